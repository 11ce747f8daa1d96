"""The headline durability test (security reference b, test 2; G.48 and G.49).

Numbered messages from several clients while the relay process is SIGKILLed at random
moments at least ten times and the upstream misbehaves for about 10 % of the messages
(421, 451, or taking the message and dropping the connection before its reply). At the
end every message that got 250 has reached the upstream; duplicates are counted and
printed (the reply-lost window and a kill between the upstream's 250 and our bookkeeping
make them possible; loss is not). ``bench/faults.py`` runs the same loop with a larger N.
"""

from __future__ import annotations

import pytest

from .chaos import format_table, run_crash_loop

pytestmark = pytest.mark.slow


def test_every_acknowledged_message_survives_ten_kills_and_a_faulty_upstream(tmp_path):
    tally = run_crash_loop(tmp_path, clients=4, per_client=50, kills=10, fault_rate=0.1)
    print("\n" + format_table([tally]))
    assert tally.faults >= 10 and "10 SIGKILLs" in tally.notes
    assert tally.acknowledged == tally.sent == 200
    assert tally.lost == 0, f"{tally.lost} acknowledged messages were lost"
    assert tally.delivered == tally.acknowledged
    assert tally.seconds < 60
