"""Which messages share one batch call (workers/batching.py): pure decisions."""

from __future__ import annotations

from tidings.providers.base import OutgoingEmail
from tidings.render.shape import Shape
from tidings.workers.batching import Member, batch_key, outgoing_batch, plan_batches, units


def _member(
    to: str,
    name: str,
    *,
    shape_key: str = "k",
    headers: dict[str, str] | None = None,
    **changes: object,
) -> Member:
    values: dict[str, object] = {
        "tidings_id": f"msg_{to}",
        "from_address": "a@mg.example.com",
        "to": to,
        "subject": f"Hi {name}",
        "html": f"<p>{name}</p>",
        "text": name,
        "headers": headers or {},
    }
    values.update(changes)
    shape = Shape(
        shape_key,
        ("Hi ", "s0", ""),
        ("<p>", "h0", "</p>"),
        ("", "t0", ""),
        {"s0": name, "h0": name, "t0": name},
    )
    return Member(
        email=OutgoingEmail(**values),  # type: ignore[arg-type]
        shape=shape,
        configuration_id="prv_1",
        step=0,
        config="cfg",
    )


def test_units_put_a_requests_messages_together_and_others_alone() -> None:
    request = {"a": "req_1", "b": "req_1", "c": "c", "d": "req_1", "e": "req_2"}
    got = units(list(request), request.get, size=2)
    assert sorted(map(sorted, got)) == [["a", "b"], ["c"], ["d"], ["e"]]
    assert units(list(request), request.get, size=1) == [[i] for i in request]


def test_members_sharing_a_key_form_batches_of_at_most_size() -> None:
    members = [_member(f"u{i}@x.test", f"N{i}") for i in range(5)]
    batches, alone = plan_batches(members, lambda m: m, size=2)
    assert [len(b) for b in batches] == [2, 2] and len(alone) == 1


def test_an_address_is_once_per_batch() -> None:
    members = [_member("same@x.test", "A"), _member("SAME@x.test", "B"), _member("o@x.test", "C")]
    batches, alone = plan_batches(members, lambda m: m, size=10)
    assert [[m.email.to for m in b] for b in batches] == [["same@x.test", "o@x.test"]]
    assert [m.email.to for m in alone] == ["SAME@x.test"]


def test_different_shapes_tags_or_no_shape_are_not_batched_together() -> None:
    one, two = _member("a@x.test", "A"), _member("b@x.test", "B", shape_key="other")
    tagged = _member("c@x.test", "C", tags=("t",))
    assert len({batch_key(one), batch_key(two), batch_key(tagged)}) == 3
    no_shape = Member(one.email, None, "prv_1", 0, "cfg")
    assert batch_key(no_shape) is None
    assert batch_key(_member("d@x.test", "D", cc=("x@x.test",))) is None
    # The email must be the shape with its values: a changed subject is not.
    changed = _member("e@x.test", "E", subject="Something else")
    assert batch_key(changed) is None


def test_headers_that_differ_become_placeholders() -> None:
    members = [
        _member("a@x.test", "A", headers={"List-Unsubscribe": "<https://u/a>", "X-Same": "1"}),
        _member("b@x.test", "B", headers={"List-Unsubscribe": "<https://u/b>", "X-Same": "1"}),
    ]
    assert batch_key(members[0]) == batch_key(members[1])
    batch = outgoing_batch(members)
    assert batch.headers["X-Same"] == ("1",)
    (slot,) = batch.headers["List-Unsubscribe"][1::2]
    assert [r.values[slot] for r in batch.recipients] == ["<https://u/a>", "<https://u/b>"]
    assert [r.tidings_id for r in batch.recipients] == ["msg_a@x.test", "msg_b@x.test"]
    assert batch.subject == ("Hi ", "s0", "")


def test_a_batch_carries_at_most_so_much_of_its_recipients_values() -> None:
    members = [_member(f"u{i}@x.test", "N" * 1000) for i in range(10)]
    batches, alone = plan_batches(members, lambda m: m, size=1000, max_chars=7000)
    # Each member carries about 3,000 characters (its name three times): two per call.
    assert [len(b) for b in batches] == [2] * 5 and alone == []
