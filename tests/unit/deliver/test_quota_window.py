"""The quota arithmetic (pure): rolling windows, pace, pauses; and the state file."""

from __future__ import annotations

import asyncio

import pytest

from relay.deliver.options import QuotaConfig
from relay.deliver.quota import (
    Governor,
    Window,
    is_quota_reply,
    next_slot,
    paused,
    read_usage,
    usage,
)
from relay.reply import Reply

DAY = 86400.0
NOW = 1_000_000.0


def sent(*times_and_counts: tuple[float, int]) -> Window:
    return Window(tuple(times_and_counts))


def test_under_every_limit_a_message_may_go_now():
    quota = QuotaConfig(messages=3, recipients=10)
    assert next_slot(sent((NOW - 10, 1), (NOW - 5, 1)), quota, NOW, 1) is None


def test_at_the_message_limit_the_next_slot_is_when_the_oldest_send_leaves_the_window():
    quota = QuotaConfig(messages=3)
    window = sent((NOW - 100, 1), (NOW - 50, 1), (NOW - 10, 1))
    assert next_slot(window, quota, NOW, 1) == NOW - 100 + DAY


def test_sends_older_than_the_window_do_not_count():
    quota = QuotaConfig(messages=2)
    window = sent((NOW - DAY - 1, 1), (NOW - DAY, 1), (NOW - 10, 1))
    assert next_slot(window, quota, NOW, 1) is None
    assert usage("a", window, quota, NOW).messages == 1


def test_recipients_wait_until_enough_of_them_leave_the_window():
    quota = QuotaConfig(recipients=10)
    window = sent((NOW - 300, 4), (NOW - 200, 4), (NOW - 100, 1))
    assert next_slot(window, quota, NOW, 1) is None  # 9 + 1 fits
    assert next_slot(window, quota, NOW, 2) == NOW - 300 + DAY  # 4 leave, 7 + 2 fits
    assert next_slot(window, quota, NOW, 6) == NOW - 200 + DAY  # 8 must leave


def test_a_message_larger_than_the_limit_waits_for_an_empty_window_not_forever():
    quota = QuotaConfig(recipients=5)
    assert next_slot(sent((NOW - 10, 2)), quota, NOW, 9) == NOW - 10 + DAY
    assert next_slot(Window(), quota, NOW, 9) is None


def test_the_pace_limits_messages_per_minute():
    quota = QuotaConfig(per_minute=2)
    window = sent((NOW - 90, 1), (NOW - 40, 1), (NOW - 20, 1))
    assert next_slot(window, quota, NOW, 1) == NOW - 40 + 60


def test_presets_fill_in_what_is_not_given():
    assert (
        QuotaConfig(preset="gmail").message_limit,
        QuotaConfig(preset="gmail").recipient_limit,
    ) == (500, 500)
    workspace = QuotaConfig(preset="workspace", recipients=3000)
    assert (workspace.message_limit, workspace.recipient_limit) == (2000, 3000)


@pytest.mark.parametrize(
    ("reply", "quota"),
    [
        (Reply(550, "5.4.5 Daily user sending limit exceeded."), True),
        (Reply(421, "4.7.0 Try again later, closing connection."), True),
        (Reply(454, "4.7.0 Too many login attempts, please try again later."), True),
        (Reply(550, "5.1.1 The email account does not exist."), False),
        (Reply(451, "4.3.0 Mail server temporarily rejected message."), False),
    ],
)
def test_quota_replies_are_recognised(reply, quota):
    assert is_quota_reply(reply) is quota


def test_a_daily_limit_reply_pauses_until_the_oldest_send_leaves_the_window():
    quota = QuotaConfig(messages=500, pause=900)
    window = sent((NOW - 3600, 1), (NOW - 60, 1))
    daily = paused(window, quota, NOW, Reply(550, "5.4.5 Daily user sending limit exceeded"))
    assert daily.paused_until == NOW - 3600 + DAY
    rate = paused(window, quota, NOW, Reply(454, "4.7.0 Too many login attempts"))
    assert rate.paused_until == NOW + 900
    assert next_slot(rate, quota, NOW, 1) == NOW + 900


def test_usage_reads_as_used_over_limit_and_the_next_slot():
    quota = QuotaConfig(messages=2, recipients=100)
    window = sent((NOW - 100, 3), (NOW - 10, 4))
    found = usage("trac@smtp.gmail.com", window, quota, NOW)
    assert (found.messages, found.recipients, found.next_slot) == (2, 7, NOW - 100 + DAY)
    assert found.fraction == 1.0
    assert str(found).startswith(
        "quota trac@smtp.gmail.com: 2/2 messages, 7/100 recipients in 24 h"
    )


def test_the_governor_keeps_its_window_across_restarts(tmp_path):
    quota = QuotaConfig(messages=10)

    async def use() -> None:
        governor = Governor("trac@smtp.example.org", quota, tmp_path)
        governor.load()
        await governor.reserve(NOW, 3)
        await governor.reserve(NOW + 1, 1)
        await governor.release(NOW + 1, 1)  # the upstream took nothing: uncounted
        await governor.pause(NOW + 2, Reply(421, "4.7.0 slow down"))

    asyncio.run(use())
    again = Governor("trac@smtp.example.org", quota, tmp_path)
    again.load()
    assert again.window.sends == ((NOW, 3),)
    assert again.window.paused_until == NOW + 2 + quota.pause
    (found,) = read_usage(tmp_path, NOW + 3)
    assert (found.account, found.messages, found.recipients) == ("trac@smtp.example.org", 1, 3)
    assert found.message_limit == 10 and found.paused_until == NOW + 2 + quota.pause
