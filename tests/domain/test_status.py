"""Status facts: the mapping of provider events, the derived status, and the merge laws."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.domain.events import DeliveryEvent, EventKind
from tidings.domain.status import (
    NO_FACTS,
    Failure,
    HistoryType,
    Reason,
    Status,
    StatusFacts,
    Unroutable,
    apply_event,
    apply_events,
    derive,
    error_message,
    history_type_for,
    is_final,
    merge,
    with_canceled,
    with_enqueued,
    with_failure,
    with_sent,
    with_unroutable,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def event(
    kind: EventKind,
    seconds: float = 0,
    *,
    severity: str | None = None,
    reason: str | None = None,
    code: int | None = None,
    message: str | None = None,
    event_id: str | None = None,
) -> DeliveryEvent:
    return DeliveryEvent(
        event_id=event_id or f"{kind}-{seconds}-{severity}-{reason}",
        kind=kind,
        timestamp=at(seconds),
        recipient="jane@example.com",
        provider_message_id="20240501.1@mg.example.com",
        tidings_id="msg_1",
        domain="mg.example.com",
        severity=severity,
        reason=reason,
        code=code,
        message=message,
    )


def status_of(*events: DeliveryEvent) -> tuple[Status, Reason | None]:
    return derive(apply_events(with_sent(NO_FACTS, at(-1)), events))


# --- mapping of single events ---------------------------------------------------------


def test_nothing_known_is_enqueued() -> None:
    assert derive(NO_FACTS) == (Status.ENQUEUED, None)
    assert derive(with_enqueued(NO_FACTS, T0)) == (Status.ENQUEUED, None)


def test_sent() -> None:
    assert derive(with_sent(NO_FACTS, T0)) == (Status.SENT, None)


def test_delivered_sets_the_time_from_the_event() -> None:
    facts = apply_event(NO_FACTS, event(EventKind.DELIVERED, 5))
    assert facts.delivered_at == at(5)
    assert derive(facts) == (Status.DELIVERED, None)


def test_opened_implies_delivered_at_its_own_time() -> None:
    facts = apply_event(NO_FACTS, event(EventKind.OPENED, 7))
    assert (facts.delivered_at, facts.opened_at) == (at(7), at(7))
    assert derive(facts) == (Status.OPENED, None)


def test_late_delivered_does_not_move_opened_back_but_corrects_the_time() -> None:
    facts = apply_event(NO_FACTS, event(EventKind.OPENED, 7))
    facts = apply_event(facts, event(EventKind.DELIVERED, 3))
    assert derive(facts) == (Status.OPENED, None)
    assert facts.delivered_at == at(3)
    assert facts.opened_at == at(7)


def test_clicked_implies_opened_and_delivered() -> None:
    facts = apply_event(NO_FACTS, event(EventKind.CLICKED, 9))
    assert (facts.delivered_at, facts.opened_at, facts.clicked_at) == (at(9), at(9), at(9))
    assert derive(facts) == (Status.CLICKED, None)


def test_permanent_failure_is_undeliverable_bounced_with_code_and_message() -> None:
    facts = apply_event(
        NO_FACTS,
        event(
            EventKind.FAILED,
            4,
            severity="permanent",
            reason="bounce",
            code=550,
            message="5.1.1 mailbox does not exist",
        ),
    )
    assert derive(facts) == (Status.UNDELIVERABLE, Reason.BOUNCED)
    assert facts.failure == Failure(at(4), Reason.BOUNCED, 550, "5.1.1 mailbox does not exist")
    assert error_message(facts) == "5.1.1 mailbox does not exist"


@pytest.mark.parametrize("reason", ["suppress-unsubscribe", "suppress-complaint"])
def test_suppressed_opt_outs_are_unsubscribed(reason: str) -> None:
    assert status_of(event(EventKind.FAILED, 1, severity="permanent", reason=reason)) == (
        Status.UNDELIVERABLE,
        Reason.UNSUBSCRIBED,
    )


@pytest.mark.parametrize("reason", ["suppress-bounce", "generic", "old", None])
def test_other_permanent_failures_are_bounced(reason: str | None) -> None:
    assert status_of(event(EventKind.FAILED, 1, severity="permanent", reason=reason)) == (
        Status.UNDELIVERABLE,
        Reason.BOUNCED,
    )


@pytest.mark.parametrize("severity", ["temporary", None])
def test_temporary_or_unknown_failure_changes_nothing(severity: str | None) -> None:
    assert status_of(event(EventKind.FAILED, 1, severity=severity)) == (Status.SENT, None)


@pytest.mark.parametrize(
    "kind", [EventKind.ACCEPTED, EventKind.COMPLAINED, EventKind.UNSUBSCRIBED, EventKind.STORED]
)
def test_history_only_events_change_nothing(kind: EventKind) -> None:
    assert status_of(event(kind, 1)) == (Status.SENT, None)
    assert status_of(event(EventKind.DELIVERED, 1), event(kind, 2)) == (Status.DELIVERED, None)


def test_rejected_is_a_provider_error() -> None:
    facts = apply_event(NO_FACTS, event(EventKind.REJECTED, 1, message="not allowed"))
    assert derive(facts) == (Status.UNDELIVERABLE, Reason.PROVIDER_ERROR)
    assert error_message(facts) == "not allowed"


# --- tie rules ------------------------------------------------------------------------


def test_async_bounce_after_delivered_is_undeliverable() -> None:
    assert status_of(
        event(EventKind.DELIVERED, 1),
        event(EventKind.FAILED, 60, severity="permanent", reason="bounce"),
    ) == (Status.UNDELIVERABLE, Reason.BOUNCED)


def test_permanent_failure_outranks_clicked_and_times_are_kept() -> None:
    facts = apply_events(
        NO_FACTS,
        [
            event(EventKind.CLICKED, 10),
            event(EventKind.FAILED, 60, severity="permanent"),
        ],
    )
    assert derive(facts) == (Status.UNDELIVERABLE, Reason.BOUNCED)
    assert facts.clicked_at == at(10)


def test_earliest_failure_wins_whatever_the_order() -> None:
    rejected = event(EventKind.REJECTED, 1, message="refused")
    bounced = event(EventKind.FAILED, 2, severity="permanent", reason="bounce")
    one = apply_events(NO_FACTS, [rejected, bounced])
    two = apply_events(NO_FACTS, [bounced, rejected])
    assert one == two
    assert one.failure is not None
    assert one.failure.reason is Reason.PROVIDER_ERROR


def test_failures_at_the_same_time_are_chosen_by_total_order() -> None:
    a = with_failure(NO_FACTS, T0, Reason.BOUNCED, 550, "a")
    b = with_failure(NO_FACTS, T0, Reason.BOUNCED, 551, "a")
    assert merge(a, b) == merge(b, a)
    assert merge(a, b).failure == Failure(T0, Reason.BOUNCED, 550, "a")


def test_unroutable() -> None:
    facts = with_unroutable(NO_FACTS, T0, Reason.NO_CHANNELS, "recipient has no email address")
    assert derive(facts) == (Status.UNROUTABLE, Reason.NO_CHANNELS)
    assert error_message(facts) == "recipient has no email address"
    assert is_final(facts)


def test_canceled() -> None:
    facts = with_canceled(with_enqueued(NO_FACTS, T0), at(1))
    assert derive(facts) == (Status.CANCELED, None)
    assert is_final(facts)


def test_earlier_of_canceled_and_unroutable_wins() -> None:
    unroutable_first = with_canceled(with_unroutable(NO_FACTS, at(1), Reason.NO_PROVIDERS), at(2))
    canceled_first = with_canceled(with_unroutable(NO_FACTS, at(2), Reason.NO_PROVIDERS), at(1))
    tie = with_canceled(with_unroutable(NO_FACTS, at(1), Reason.NO_PROVIDERS), at(1))
    assert derive(unroutable_first) == (Status.UNROUTABLE, Reason.NO_PROVIDERS)
    assert derive(canceled_first) == (Status.CANCELED, None)
    assert derive(tie) == (Status.UNROUTABLE, Reason.NO_PROVIDERS)


def test_a_send_outranks_a_cancel_that_raced_it() -> None:
    facts = with_sent(with_canceled(NO_FACTS, at(1)), at(2))
    assert derive(facts) == (Status.SENT, None)
    assert not is_final(facts)


def test_dispatcher_failure() -> None:
    facts = with_failure(
        with_enqueued(NO_FACTS, T0), at(1), Reason.PROVIDER_ERROR, 401, "wrong API key"
    )
    assert derive(facts) == (Status.UNDELIVERABLE, Reason.PROVIDER_ERROR)
    assert facts.failure == Failure(at(1), Reason.PROVIDER_ERROR, 401, "wrong API key")


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        StatusFacts(sent_at=datetime(2024, 5, 1))
    with pytest.raises(ValueError, match=r"failure\.at"):
        StatusFacts(failure=Failure(datetime(2024, 5, 1), Reason.FAILED))


# --- history types --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_event", "expected"),
    [
        (event(EventKind.DELIVERED), HistoryType.DELIVERED),
        (event(EventKind.OPENED), HistoryType.OPENED),
        (event(EventKind.CLICKED), HistoryType.CLICKED),
        (event(EventKind.FAILED, severity="permanent"), HistoryType.UNDELIVERABLE),
        (event(EventKind.FAILED, severity="temporary"), HistoryType.TEMPORARY_FAILURE),
        (event(EventKind.REJECTED), HistoryType.UNDELIVERABLE),
        (event(EventKind.COMPLAINED), HistoryType.COMPLAINED),
        (event(EventKind.UNSUBSCRIBED), HistoryType.UNSUBSCRIBED),
        (event(EventKind.ACCEPTED), HistoryType.ACCEPTED),
        (event(EventKind.STORED), HistoryType.STORED),
    ],
)
def test_history_type_for(given_event: DeliveryEvent, expected: HistoryType) -> None:
    assert history_type_for(given_event) == expected
    assert history_type_for(given_event) == expected.value  # it is a str


# --- laws -----------------------------------------------------------------------------

times = st.integers(min_value=0, max_value=3600).map(at)
maybe_time = st.none() | times
reasons = st.sampled_from(list(Reason))
failures = st.none() | st.builds(
    Failure,
    at=times,
    reason=reasons,
    code=st.none() | st.sampled_from([421, 550, 551, 605]),
    message=st.none() | st.sampled_from(["a", "b", "mailbox full"]),
)
unroutables = st.none() | st.builds(
    Unroutable, at=times, reason=reasons, why=st.none() | st.sampled_from(["x", "y"])
)
facts_strategy = st.builds(
    StatusFacts,
    enqueued_at=maybe_time,
    sent_at=maybe_time,
    delivered_at=maybe_time,
    opened_at=maybe_time,
    clicked_at=maybe_time,
    failure=failures,
    unroutable=unroutables,
    canceled_at=maybe_time,
)


@given(facts_strategy, facts_strategy)
def test_merge_is_commutative(a: StatusFacts, b: StatusFacts) -> None:
    assert merge(a, b) == merge(b, a)


@given(facts_strategy, facts_strategy, facts_strategy)
def test_merge_is_associative(a: StatusFacts, b: StatusFacts, c: StatusFacts) -> None:
    assert merge(merge(a, b), c) == merge(a, merge(b, c))


@given(facts_strategy, facts_strategy)
def test_merge_is_idempotent(a: StatusFacts, b: StatusFacts) -> None:
    ab = merge(a, b)
    assert merge(ab, ab) == ab
    assert merge(ab, b) == ab
    assert merge(merge(a, a), NO_FACTS) == merge(a, NO_FACTS)


provider_events = st.builds(
    event,
    kind=st.sampled_from(list(EventKind)),
    seconds=st.integers(min_value=0, max_value=600),
    severity=st.sampled_from(["permanent", "temporary", None]),
    reason=st.sampled_from(["bounce", "suppress-unsubscribe", "suppress-complaint", None]),
    code=st.sampled_from([None, 550, 421]),
    message=st.sampled_from([None, "mailbox does not exist", "try later"]),
)


@given(
    events=st.lists(provider_events, min_size=1, max_size=12),
    data=st.data(),
)
def test_any_order_and_duplication_of_events_ends_the_same(
    events: list[DeliveryEvent], data: st.DataObject
) -> None:
    start = with_sent(with_enqueued(NO_FACTS, at(-10)), at(-5))
    expected = apply_events(start, events)

    # Any permutation, with any event repeated any number of times, and the dispatcher's
    # own fact (sent) learned again somewhere in the middle.
    repeated = data.draw(st.lists(st.sampled_from(events), max_size=20))
    shuffled = data.draw(st.permutations(events + repeated))
    split = data.draw(st.integers(min_value=0, max_value=len(shuffled)))
    facts = apply_events(with_enqueued(NO_FACTS, at(-10)), shuffled[:split])
    facts = with_sent(facts, at(-5))
    facts = apply_events(facts, shuffled[split:])

    assert facts == expected
    assert derive(facts) == derive(expected)


@given(st.lists(provider_events, min_size=1, max_size=12))
def test_status_never_moves_back(events: list[DeliveryEvent]) -> None:
    """Adding an event never lowers the rank of the status."""
    rank = {
        Status.ENQUEUED: 0,
        Status.SENT: 1,
        Status.DELIVERED: 2,
        Status.OPENED: 3,
        Status.CLICKED: 4,
        Status.UNDELIVERABLE: 5,
    }
    facts = with_sent(NO_FACTS, at(-1))
    for one in events:
        before = rank[derive(facts)[0]]
        facts = apply_event(facts, one)
        assert rank[derive(facts)[0]] >= before
