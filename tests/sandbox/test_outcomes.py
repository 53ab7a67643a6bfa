"""Recipient tags → lifecycle steps (the table documented in docs/sandbox.md)."""

from __future__ import annotations

from tidings.sandbox import outcomes


def test_tag_is_what_follows_the_last_plus() -> None:
    assert outcomes.outcome_tag("ann+bounce@x.test") == "bounce"
    assert outcomes.outcome_tag("ann+team+OPEN@x.test") == "open"
    assert outcomes.outcome_tag("ann@x.test") == "deliver"
    assert outcomes.outcome_tag("ann+whatever@x.test") == "deliver"


def test_steps() -> None:
    assert outcomes.steps_for("a+defer@x.test", suppressed=False) == (
        outcomes.DEFERRED,
        outcomes.DELIVERED,
    )
    assert outcomes.steps_for("a+silent@x.test", suppressed=False) == ()
    assert outcomes.steps_for("a+open@x.test", suppressed=True) == (outcomes.SUPPRESSED,)
    assert outcomes.steps_for("a+click@x.test", suppressed=False, track_clicks=False) == (
        outcomes.DELIVERED,
        outcomes.OPENED,
    )
    assert outcomes.steps_for("a+click@x.test", suppressed=False, track_opens=False) == (
        outcomes.DELIVERED,
        outcomes.CLICKED,
    )
