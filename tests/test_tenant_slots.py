"""The slot table of PROMPT_CACHE=tenant: which slot a generation gets, and whether it may reuse its prompt."""

from __future__ import annotations

import orjson
import pytest

from graycat.workers.engines.tenant_slots import ForeignSlot, PromptCache, TenantSlots, UnknownSlot


def _run(table: TenantSlots, owner: str, prompt: str, **extra: object) -> tuple[int | None, bool]:
    """(slot, reuses its cached prompt) of one generation, released at once."""
    body, slot = table.prepare("/completion", owner, orjson.dumps({"prompt": prompt, **extra}))
    table.release(slot)
    request = orjson.loads(body)
    return request.get("id_slot"), request.get("cache_prompt", True)


def test_a_token_keeps_its_slot_and_another_token_never_reuses_it() -> None:
    table = TenantSlots(2, "tenant")
    a_slot, _ = _run(table, "a", "system A, question 1")
    assert _run(table, "a", "system A, question 2") == (a_slot, True)
    b_slot, b_reuses = _run(table, "b", "system A, question 3")
    assert b_slot != a_slot and not b_reuses  # a slot nobody used, computed afresh
    assert _run(table, "b", "guess", id_slot=a_slot) == (a_slot, False)  # asked for A's slot: no reuse
    assert _run(table, "a", "system A, question 4") == (b_slot, False)  # both slots are B's now


@pytest.mark.parametrize("endpoint", ["/embeddings", "/v1/embeddings"])
def test_an_embedding_leaves_no_slot_anyones(endpoint: str) -> None:
    """llama.cpp runs an embedding on a slot it picks and leaves its input there: a token whose slot it took
    would reuse another token's input as its cached prompt."""
    table = TenantSlots(2, "tenant")
    slots = [_run(table, "a", f"prompt {i}", id_slot=i)[0] for i in (0, 1)]
    body, none = table.prepare(endpoint, "b", b'{"input": "secret"}')
    assert none is None and body == b'{"input": "secret"}'
    assert all(_run(table, "a", "x", id_slot=s) == (s, False) for s in slots)
    _run(table, "a", "x", id_slot=0)
    table.release(None, endpoint)  # once it ran: it may have waited for a slot a generation had
    assert _run(table, "a", "x", id_slot=0) == (0, False)


def test_off_never_reuses_and_shared_leaves_the_body_alone() -> None:
    off = TenantSlots(2, "off")
    _run(off, "a", "x")
    assert _run(off, "a", "x")[1] is False
    shared = TenantSlots(2, "shared")
    body = orjson.dumps({"prompt": "x", "id_slot": 1})
    assert shared.prepare("/completion", "a", body) == (body, None)


def test_slot_actions_act_only_on_the_callers_slots() -> None:
    table = TenantSlots(2, "tenant")
    slot, _ = _run(table, "a", "secret")
    assert slot is not None
    with pytest.raises(ForeignSlot):
        table.begin_action(slot, "save", "b")
    with pytest.raises(ForeignSlot):
        table.begin_action(slot, "erase", "b")
    table.begin_action(slot, "restore", "b")  # takes the slot over, once it succeeded
    table.end_action(slot, "restore", "b", done=True)
    table.begin_action(slot, "save", "b")
    with pytest.raises(ForeignSlot):
        table.begin_action(slot, "save", "a")


@pytest.mark.parametrize("mode", ["tenant", "shared", "off"])
def test_a_slot_the_engine_does_not_have_is_refused(mode: PromptCache) -> None:
    table = TenantSlots(2, mode)
    for index in (2, 64, 2**31 - 1):
        with pytest.raises(UnknownSlot):
            table.begin_action(index, "erase", "a")


def test_unknown_content_is_nobodys() -> None:
    table = TenantSlots(2, "tenant")
    slot, _ = _run(table, "a", "secret")
    assert slot is not None
    table.begin_action(slot, "restore", "a")
    table.end_action(slot, "restore", "a", done=False)  # a failed restore may have changed the slot
    with pytest.raises(ForeignSlot):
        table.begin_action(slot, "save", "a")
    body, none = table.prepare("/completion", "b", orjson.dumps({"prompt": [[1], [2]], "id_slot": 0}), 2)
    assert none is None and orjson.loads(body) == {"prompt": [[1], [2]], "cache_prompt": False}
    assert all(_run(table, owner, "x")[1] is False for owner in ("a", "b"))  # several prompts: any slot
