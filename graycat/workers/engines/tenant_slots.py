"""Which tenant's state each llama.cpp slot holds, so that one token's cached prompt never serves another's.

With `PROMPT_CACHE=tenant` (the default) the worker, not llama.cpp, chooses the slot of every generation
(`id_slot`): a free slot that the same token used last, the one whose prompt shares the longest prefix with the
new one, else the least recently used free slot. On a slot another token used last the request runs with
`cache_prompt: false`, so the engine reprocesses the whole prompt and its timings and latency say nothing about
what the other token sent. `off` never reuses a prompt; `shared` leaves both to llama.cpp (one trusted tenant).
Slot files and slot actions follow the same owners: a token may save or erase only a slot it used last (or
one nobody used), and a slot it restores into is its own from then on.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Literal

import orjson

PromptCache = Literal["tenant", "shared", "off"]
GENERATING = frozenset(
    {
        "/completion",
        "/completions",
        "/v1/completions",
        "/chat/completions",
        "/v1/chat/completions",
        "/infill",
        "/v1/responses",
    }
)
# Requests llama.cpp runs on a slot it picks, leaving their prompt in it (a worker started with --embeddings)
EMBEDDING = frozenset({"/embeddings", "/v1/embeddings"})
_CHANGING = "\0changing"  # the owner of a slot being rewritten, or of unknown content: matches no token
PREFIX_BYTES = 4096  # of a prompt, kept per slot to find the slot that already holds most of the next one


class ForeignSlot(Exception):
    """A slot action on a slot another token used last."""


class UnknownSlot(Exception):
    """A slot action on a slot number the engine does not have."""


@dataclass(slots=True)
class _Slot:
    owner: str | None = None
    prefix: bytes = b""
    busy: int = 0
    used: int = 0  # order of last use: the smallest is the least recently used


class TenantSlots:
    """The owners of one engine's slots, and the slot each generation runs on."""

    def __init__(self, slots: int, mode: PromptCache) -> None:
        self.mode = mode
        self._slots = [_Slot() for _ in range(slots)]
        self._clock = itertools.count(1)

    def prepare(self, endpoint: str, owner: str, body: bytes, prompts: int = 1) -> tuple[bytes, int | None]:
        """The engine body of a job and the slot it was given (to `release` after the run; None: none). A job
        of several prompts runs them on slots llama.cpp picks, without reusing any prompt; since any slot may then
        hold one of them, no slot is anyone's until a generation takes it again. The same for an embedding (also
        once it ran: it may have waited for a slot that a generation had)."""
        path = endpoint.split("?", 1)[0]
        if self.mode == "shared" or path not in GENERATING:
            if self.mode != "shared" and path in EMBEDDING:
                self._forget()
            return body, None
        try:
            request: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body, None
        if not isinstance(request, dict):
            return body, None
        if prompts > 1:
            self._forget()
            request["cache_prompt"] = False
            request.pop("id_slot", None)
            return orjson.dumps(request), None
        prefix = orjson.dumps(request.get("messages", request.get("prompt", request.get("input"))))[:PREFIX_BYTES]
        wanted = request.get("id_slot")
        index = wanted if isinstance(wanted, int) and 0 <= wanted < len(self._slots) else self._choose(owner, prefix)
        slot = self._slots[index]
        reuse = self.mode == "tenant" and slot.owner == owner
        slot.owner, slot.prefix, slot.used = owner, prefix, next(self._clock)
        slot.busy += 1
        request["id_slot"] = index
        if not reuse:
            request["cache_prompt"] = False
        return orjson.dumps(request), index

    def _forget(self) -> None:
        """No slot is anyone's: llama.cpp may have put another token's prompt in any of them."""
        for slot in self._slots:
            slot.owner, slot.prefix = _CHANGING, b""

    def release(self, index: int | None, endpoint: str = "") -> None:
        if index is not None:
            self._slots[index].busy -= 1
        elif self.mode != "shared" and endpoint.split("?", 1)[0] in EMBEDDING:
            self._forget()

    def _choose(self, owner: str, prefix: bytes) -> int:
        free = [i for i, s in enumerate(self._slots) if not s.busy] or list(range(len(self._slots)))
        own = [i for i in free if self._slots[i].owner == owner]
        if own:
            return max(own, key=lambda i: (_common(self._slots[i].prefix, prefix), self._slots[i].used))
        return min(free, key=lambda i: (self._slots[i].owner is not None, self._slots[i].used))

    def begin_action(self, index: int, action: str, owner: str) -> None:
        """Admit a slot action of `owner` (ForeignSlot when the slot is another token's). While a restore or an
        erase runs, nobody reuses the slot."""
        if not 0 <= index < len(self._slots):  # llama.cpp acted on one of its slots for any number
            raise UnknownSlot(f"slot {index} does not exist: this model's slots are 0 to {len(self._slots) - 1}")
        if self.mode == "shared":
            return
        slot = self._slots[index]
        if action != "restore" and slot.owner not in (None, owner):
            raise ForeignSlot(
                f"slot {index} holds another token's conversation; use a slot your own requests "
                "ran on (give id_slot in the completion)"
            )
        if action != "save":
            slot.owner, slot.prefix = _CHANGING, b""

    def end_action(self, index: int, action: str, owner: str, done: bool) -> None:
        """Record what a slot action did: a restored slot is its token's, an erased one nobody's; after a failed
        restore or erase what the slot holds is unknown, and it is nobody's to reuse, save or erase until a
        generation takes it."""
        if self.mode == "shared" or not 0 <= index < len(self._slots) or action == "save" or not done:
            return
        slot = self._slots[index]
        slot.owner, slot.used = (owner if action == "restore" else None), next(self._clock)


def _common(a: bytes, b: bytes) -> int:
    """The length of the prefix `a` and `b` share (a binary search of slice comparisons, done in C)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low
