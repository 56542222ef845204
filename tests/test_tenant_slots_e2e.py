"""Tenants and llama.cpp's slot state: files, slot actions and cached prompts stay with the token that made them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import EMBED_MODEL, Gateway

pytestmark = pytest.mark.e2e
SECRET_PROMPT = (
    "You are the assistant of Ada Lovelace. Her bank PIN is 4711 and her recovery phrase is "
    "'orange kettle under the stairs'. Never reveal either. " * 4
)


@pytest.fixture(scope="module")
def other(gateway: Gateway, other_token: str) -> Iterator[httpx.Client]:
    with gateway.client(other_token) as client:
        yield client


def _complete(http: httpx.Client, prompt: str, **extra: object) -> tuple[int, int]:
    """The prompt tokens the engine took from its cache, and the slot it ran on."""
    resp = http.post("/completion", json={"prompt": prompt, "n_predict": 1, "temperature": 0, **extra})
    assert resp.status_code == 200, resp.text
    return int(resp.json()["timings"]["cache_n"]), int(resp.json()["id_slot"])


def test_a_token_reuses_its_own_prompt_but_never_another_tokens(gateway: Gateway, other: httpx.Client) -> None:
    with gateway.client() as mine:
        _complete(mine, SECRET_PROMPT + "Q: hello")
        cached, slot = _complete(mine, SECRET_PROMPT + "Q: what is the weather")
    assert cached > 50  # its own prefix: reused
    # the other tenant guesses the prompt: the engine computes it all again, even on the slot holding it
    assert _complete(other, SECRET_PROMPT + "Q: what is the PIN")[0] == 0
    assert _complete(other, SECRET_PROMPT + "Q: the PIN?", id_slot=slot)[0] == 0
    assert _complete(other, SECRET_PROMPT + "Q: the PIN?", id_slot=slot)[0] > 50  # now its own


def test_slot_files_are_per_token(gateway: Gateway, other: httpx.Client) -> None:
    with gateway.client() as mine:
        _complete(mine, SECRET_PROMPT, id_slot=1)
        saved = mine.post("/slots/1?action=save", json={"filename": "ada.bin"})
        assert saved.status_code == 200 and saved.json()["filename"] == "ada.bin", saved.text
        # the other token cannot read the file, nor copy the slot into a file of its own, nor erase it
        assert other.post("/slots/0?action=restore", json={"filename": "ada.bin"}).status_code == 400
        assert other.post("/slots/1?action=save", json={"filename": "copy.bin"}).status_code == 403
        assert other.post("/slots/1?action=erase", json={}).status_code == 403
        # its file of the same name is its own: the first one is intact
        _complete(other, "Something else entirely.", id_slot=0)
        assert other.post("/slots/0?action=save", json={"filename": "ada.bin"}).status_code == 200
        restored = mine.post("/slots/1?action=restore", json={"filename": "ada.bin"})
    assert restored.status_code == 200 and restored.json()["n_restored"] == saved.json()["n_saved"], restored.text


@pytest.mark.parametrize("path", ["/slots/-1?action=erase", "/slots/-2?action=save"])
def test_negative_slot_ids_are_refused(gateway: Gateway, path: str) -> None:
    with gateway.client() as http:
        resp = http.post(path, json={"filename": "x.bin"})
    assert resp.status_code == 400 and "id_slot" in resp.json()["error"]["message"], resp.text


@pytest.mark.parametrize("path", ["/slots/64?action=erase", "/slots/2147483647?action=save"])
def test_slot_numbers_past_the_workers_slots_are_refused(gateway: Gateway, other: httpx.Client, path: str) -> None:
    """llama.cpp took any slot number and acted on one of its slots: the owner check was skipped for numbers
    past the worker's slots, so another token could save or erase a conversation that was not its own."""
    with gateway.client() as mine:
        _complete(mine, SECRET_PROMPT + "Q: hello")
    resp = other.post(path, json={"filename": "stolen.bin"})
    assert resp.status_code == 400 and "does not exist" in resp.json()["error"]["message"], resp.text


def test_an_embedding_never_serves_another_tokens_prompt_cache(embedder: Gateway, other: httpx.Client) -> None:
    """On a worker started with --embeddings, llama.cpp ran an embedding on a slot of its choice and left the
    input there: the token whose slot it was reused it as its cached prompt (cache_n told how much of a guess
    matched another token's input)."""
    with embedder.client() as mine:
        _complete(mine, "hello there", model=EMBED_MODEL)  # the worker's one slot is this token's
        resp = other.post("/embeddings", json={"model": EMBED_MODEL, "content": SECRET_PROMPT})
        assert resp.status_code == 200, resp.text
        assert _complete(mine, SECRET_PROMPT[:80] + " and so on", model=EMBED_MODEL)[0] == 0
