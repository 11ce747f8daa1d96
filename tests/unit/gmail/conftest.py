"""Shared fixtures: the real Trac 1.6 messages under tests/fixtures/trac/."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.gmail import MessageView

TRAC = Path(__file__).parents[2] / "fixtures" / "trac"


@pytest.fixture
def trac_dir() -> Path:
    """Return the directory of the real Trac messages."""
    return TRAC


@pytest.fixture
def trac_view():
    """Return a function: fixture name ("new-and-change/0002") -> its message view."""

    def view(name: str, **options: object) -> MessageView:
        return MessageView.from_bytes((TRAC / f"{name}.eml").read_bytes(), **options)

    return view
