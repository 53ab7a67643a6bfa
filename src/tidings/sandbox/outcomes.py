"""What happens to a message after it is accepted, chosen by a ``+tag`` in the recipient.

``ann+bounce@x.test`` bounces, ``ann+open@x.test`` is delivered then opened, and so on. Each
scenario is a sequence of steps, one ``event_delay`` apart; the accepted event is not a step,
it is recorded when the API answers.
"""

from __future__ import annotations

from dataclasses import dataclass

# Step kinds. A failed event is described by its kind, so the event builder knows its
# severity, reason and the remote server's answer.
DELIVERED = "delivered"
BOUNCED = "bounced"  # permanent, 550 5.1.1, reason bounce, hard
NO_MX = "no-mx"  # permanent, 550 5.1.8: the *sending* domain has no MX record
DEFERRED = "deferred"  # temporary, 451 4.7.1 greylisted
SUPPRESSED = "suppressed"  # permanent, 605, reason suppress-bounce
SUPPRESSED_UNSUBSCRIBE = "suppressed-unsubscribe"  # permanent, 606, suppress-unsubscribe
SUPPRESSED_COMPLAINT = "suppressed-complaint"  # permanent, 607, suppress-complaint
RCPT_NO_MX = "rcpt-no-mx"  # temporary, 498 "No MX for [domain]": the recipient's domain
TOO_OLD = "too-old"  # permanent, 602 "Too old", reason old: Mailgun gave up retrying
OPENED = "opened"
CLICKED = "clicked"
COMPLAINED = "complained"
UNSUBSCRIBED = "unsubscribed"

# Kinds after which the address is on the domain's bounce list.
HARD_BOUNCES = frozenset({BOUNCED, NO_MX})
# The step a send meets for each suppression list that blocks it (605, 606, 607).
SUPPRESSED_BY: dict[str, str] = {
    "bounce": SUPPRESSED,
    "unsubscribe": SUPPRESSED_UNSUBSCRIBE,
    "complaint": SUPPRESSED_COMPLAINT,
}


@dataclass(frozen=True, slots=True)
class Scenario:
    """A recipient tag, the steps it produces and what the documentation says about it."""

    tag: str
    steps: tuple[str, ...]
    summary: str


SCENARIOS: dict[str, Scenario] = {
    scenario.tag: scenario
    for scenario in (
        Scenario("deliver", (DELIVERED,), "accepted, delivered (also: no tag, unknown tag)"),
        Scenario("bounce", (BOUNCED,), "accepted, failed permanent 550 5.1.1, reason bounce, hard"),
        Scenario(
            "nomx",
            (NO_MX,),
            "accepted, failed permanent 550 5.1.8: the sending domain has no MX record",
        ),
        Scenario(
            "defer", (DEFERRED, DELIVERED), "accepted, failed temporary 451 greylisted, delivered"
        ),
        Scenario(
            "rcptnomx",
            (RCPT_NO_MX, TOO_OLD),
            "accepted, failed temporary 498 No MX for the recipient's domain, then failed "
            "permanent 602 Too old (Mailgun gave up retrying)",
        ),
        Scenario("open", (DELIVERED, OPENED), "accepted, delivered, opened"),
        Scenario("click", (DELIVERED, OPENED, CLICKED), "accepted, delivered, opened, clicked"),
        Scenario("complain", (DELIVERED, COMPLAINED), "accepted, delivered, complained"),
        Scenario("unsubscribe", (DELIVERED, UNSUBSCRIBED), "accepted, delivered, unsubscribed"),
        Scenario("silent", (), "accepted, and nothing after"),
    )
}


def outcome_tag(address: str) -> str:
    """The scenario tag of an address: what follows the last ``+`` of its local part."""
    local = address.rpartition("@")[0]
    _, plus, tag = local.rpartition("+")
    tag = tag.lower() if plus else ""
    return tag if tag in SCENARIOS else "deliver"


def steps_for(
    address: str,
    *,
    suppressed: bool | str | None,
    track_opens: bool = True,
    track_clicks: bool = True,
) -> tuple[str, ...]:
    """The steps an accepted message to ``address`` goes through.

    An address on a suppression list is not tried (``suppressed`` names the list: ``bounce``
    605, ``unsubscribe`` 606, ``complaint`` 607; ``True`` means bounce). Opens and clicks
    are only recorded when their tracking is on, as at Mailgun.
    """
    if suppressed:
        return (SUPPRESSED_BY.get(str(suppressed), SUPPRESSED),)
    steps = SCENARIOS[outcome_tag(address)].steps
    if not track_opens:
        steps = tuple(step for step in steps if step != OPENED)
    if not track_clicks:
        steps = tuple(step for step in steps if step != CLICKED)
    return steps
