"""llama.cpp native routes, rule by rule of the LLM for Unity contract: constrained output, sampling fields, slots."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Gateway

pytestmark = pytest.mark.e2e


def _complete(gateway: Gateway, **body: object) -> dict:  # type: ignore[type-arg]
    with gateway.client() as http:
        resp = http.post("/completion", json={"temperature": 0, **body})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_grammar_constrains_the_output(gateway: Gateway) -> None:
    out = _complete(gateway, prompt="Is the sky green? Answer:", n_predict=10, grammar='root ::= " yes" | " no"')
    assert out["content"] in {" yes", " no"}


def test_json_schema_object_constrains_the_output(gateway: Gateway) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 10}},
        "required": ["city"],
        "additionalProperties": False,
    }
    out = _complete(gateway, prompt="Name a city as JSON:", n_predict=40, json_schema=schema)
    assert set(json.loads(out["content"])) == {"city"}


def test_stop_words_seed_and_n_probs_are_honoured(gateway: Gateway) -> None:
    out = _complete(gateway, prompt="1, 2, 3, 4,", n_predict=20, stop=[","])
    assert "," not in out["content"] and out["stop_type"] == "word" and out["stopping_word"] == ","
    seeded = [
        _complete(gateway, prompt="Once upon a time", n_predict=12, temperature=1.0, seed=7)["content"]
        for _ in range(2)
    ]
    assert seeded[0] == seeded[1]
    probs = _complete(gateway, prompt="Hello", n_predict=2, n_probs=3)["completion_probabilities"]
    assert len(probs) == 2 and all(len(p["top_logprobs"]) == 3 for p in probs)


def test_n_keep_and_legacy_fields_are_accepted(gateway: Gateway) -> None:
    out = _complete(
        gateway,
        prompt="Hello",
        n_predict=2,
        n_keep=4,
        id_slot=-1,
        cache_prompt=True,
        penalize_nl=False,
        ignore_eos=False,
        unknown_field={"a": 1},
    )
    assert out["tokens_predicted"] == 2 and out["generation_settings"]["n_keep"] == 4


def test_slots_save_erase_restore_with_the_action_in_the_query_or_the_body(gateway: Gateway) -> None:
    with gateway.client() as http:
        assert (
            http.post(
                "/completion", json={"prompt": "Remember: the password is tea.", "n_predict": 1, "id_slot": 0}
            ).status_code
            == 200
        )
        saved = http.post("/slots/0?action=save", json={"filename": "chat-1.bin"})
        erased = http.post("/slots", json={"id_slot": 0, "action": "erase"})
        restored = http.post(
            "/slots", json={"id_slot": 0, "action": "restore", "filepath": "C:\\Users\\me\\AppData\\chat-1.bin"}
        )
    assert saved.status_code == 200 and saved.json()["n_saved"] > 0, saved.text
    assert erased.status_code == 200 and erased.json()["n_erased"] == saved.json()["n_saved"]
    assert restored.status_code == 200 and restored.json()["n_restored"] == saved.json()["n_saved"]


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/slots", {"id_slot": 0}, 400),  # no action
        ("/slots?action=save", {"filename": "../../etc/passwd"}, 400),
        ("/slots?action=save", {"filename": "a/b.bin"}, 400),
        ("/slots?action=save", {}, 400),  # no file name
        ("/slots?action=explode", {"filename": "a.bin"}, 400),
    ],
)
def test_bad_slot_requests_are_refused(gateway: Gateway, path: str, body: dict, status: int) -> None:  # type: ignore[type-arg]
    with gateway.client() as http:
        resp = http.post(path, json=body)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["message"]
