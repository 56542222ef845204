"""Hostile input against a live stack (`graycat api`, a SmolLM2 worker, a tiny image worker): each probe is an
ordinary token's request meant to crash an engine, stall the api or get a 500. Every probe must get a clear 4xx
in its dialect's shape; afterwards the stack must still be whole: /health fine, no job left active, the workers
alive, and a normal completion and image still made.

To add a probe, append a `Probe` to PROBES (or extend it from another module's list)."""

from __future__ import annotations

import base64
import socket
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import Cluster, Gateway, Proc, wait_until
from tests.tiny_sd import build_models_folder

pytestmark = pytest.mark.e2e
CHAT = [{"role": "user", "content": "hi"}]
DEEP = 50_000  # nesting that crashed llama.cpp's parsers (35,000 levels suffice for a grammar)


@dataclass(frozen=True)
class Probe:
    """One hostile request and the answer it must get: `status`, with `says` in the error's message (in the
    route's dialect, or as the engine words and shapes its own refusals: `engine`)."""

    name: str
    path: str  # "{job}" is replaced by the id of a finished job of the probing token
    body: Any = None
    status: int = 400
    says: str = ""
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    engine: bool = False


def nested_grammar(depth: int) -> str:
    return "root ::= " + "(" * depth + '"a"' + ")" * depth


def ref_chain(length: int) -> dict[str, Any]:
    """A flat JSON schema whose `$ref`s chain `length` deep (3,000 crashed llama.cpp's schema converter)."""
    defs: dict[str, Any] = {f"d{i}": {"$ref": f"#/$defs/d{i + 1}"} for i in range(length)}
    defs[f"d{length}"] = {"type": "string"}
    return {"$defs": defs, "$ref": "#/$defs/d0"}


def tool(parameters: Any = None, name: str = "f") -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": parameters or {"type": "object"}}}


def png(width: int, height: int, chunks: list[tuple[bytes, bytes]]) -> bytes:
    """A PNG file made of an IHDR for width x height (8-bit RGB) and the given chunks."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + b"".join(chunk(k, d) for k, d in chunks) + chunk(b"IEND", b"")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


PROBES: list[Probe] = [
    # what reaches llama.cpp's recursive parsers (each of these crashed the engine, and the worker with it)
    Probe(
        "grammar-nested",
        "/completion",
        {"prompt": "x", "n_predict": 1, "grammar": nested_grammar(DEEP)},
        says="MAX_GRAMMAR_DEPTH",
    ),
    Probe(
        "grammar-nested-chat",
        "/v1/chat/completions",
        {"messages": CHAT, "max_tokens": 1, "grammar": nested_grammar(DEEP)},
        says="MAX_GRAMMAR_DEPTH",
    ),
    Probe(
        "json-schema-ref-chain",
        "/completion",
        {"prompt": "x", "n_predict": 1, "json_schema": ref_chain(3000)},
        says="MAX_SCHEMA_DEPTH",
    ),
    Probe(
        "response-format-ref-chain",
        "/v1/chat/completions",
        {
            "messages": CHAT,
            "max_tokens": 1,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": ref_chain(3000)}},
        },
        says="MAX_SCHEMA_DEPTH",
    ),
    Probe(
        "schema-pattern-nested",
        "/completion",
        {
            "prompt": "x",
            "n_predict": 1,
            "json_schema": {"type": "string", "pattern": "^" + "(" * DEEP + "a" + ")" * DEEP + "$"},
        },
        says="MAX_GRAMMAR_DEPTH",
    ),
    Probe(
        "trigger-pattern-nested",
        "/completion",
        {
            "prompt": "x",
            "n_predict": 1,
            "grammar": 'root ::= "a"',
            "grammar_lazy": True,
            "grammar_triggers": [{"type": 2, "value": "(" * 30_000 + "a" + ")" * 30_000}],
        },
        says="MAX_GRAMMAR_DEPTH",
    ),
    Probe(  # an unknown trigger type aborts llama.cpp (SIGABRT): every job on the engine failed with it
        "trigger-type-unknown",
        "/completion",
        {
            "prompt": "x",
            "n_predict": 1,
            "grammar": 'root ::= "a"',
            "grammar_lazy": True,
            "grammar_triggers": [{"type": 99, "value": "a"}],
        },
        says="grammar_triggers.0.type",
    ),
    Probe(  # llama.cpp iterates an object's values as it does a list's items
        "trigger-type-unknown-in-object",
        "/completion",
        {
            "prompt": "x",
            "n_predict": 1,
            "grammar": 'root ::= "a"',
            "grammar_lazy": True,
            "grammar_triggers": {"t": {"type": 99, "value": "a"}},
        },
        says="grammar_triggers.t.type",
    ),
    Probe(
        "trigger-type-unknown-openai",
        "/v1/completions",
        {"prompt": "x", "max_tokens": 1, "grammar": 'root ::= "a"', "grammar_triggers": [{"type": -1, "value": "a"}]},
        says="grammar_triggers.0.type",
    ),
    Probe(  # every probability of the vocabulary for each token: a 286 MiB answer, 3 GiB of engine memory
        "n-probs-vocabulary",
        "/completion",
        {"prompt": "x", "n_predict": 64, "n_probs": 49152},
        says="MAX_N_PROBS",
    ),
    Probe(
        "top-logprobs-vocabulary-anthropic",
        "/v1/messages",
        {"messages": CHAT, "max_tokens": 64, "logprobs": True, "top_logprobs": 49152},
        says="MAX_N_PROBS",
    ),
    Probe(
        "ollama-format-ref-chain",
        "/api/chat",
        {"messages": CHAT, "stream": False, "format": ref_chain(3000)},
        says="MAX_SCHEMA_DEPTH",
    ),
    Probe(
        "tool-parameters-ref-chain",
        "/v1/chat/completions",
        {"messages": CHAT, "max_tokens": 1, "tools": [tool(ref_chain(3000))], "tool_choice": "required"},
        says="MAX_SCHEMA_DEPTH",
    ),
    Probe(
        "jobs-grammar-nested",
        "/jobs",
        {"route": "/completion", "body": {"prompt": "x", "n_predict": 1, "grammar": nested_grammar(DEEP)}},
        says="MAX_GRAMMAR_DEPTH",
    ),
    # malformed input that got a 500
    Probe(
        "tool-function-not-object",
        "/v1/chat/completions",
        {"messages": CHAT, "tools": [{"type": "function", "function": "x"}]},
        says="tools.0",
    ),
    Probe(
        "tool-function-null",
        "/v1/chat/completions",
        {"messages": CHAT, "tools": [{"type": "function", "function": None}], "tool_choice": "required"},
        says="tools.0",
    ),
    Probe(
        "tool-choice-function-string",
        "/v1/chat/completions",
        {"messages": CHAT, "tools": [tool()], "tool_choice": {"type": "function", "function": "f"}},
        says="tool_choice",
    ),
    Probe(
        "forced-tool-earlier-call-empty",
        "/v1/chat/completions",
        {
            "messages": [*CHAT, {"role": "assistant", "content": None, "tool_calls": [{}]}],
            "tools": [tool()],
            "tool_choice": "required",
        },
        says="messages.1.tool_calls",
    ),
    Probe(
        "ollama-tool-calls-empty",
        "/api/chat",
        {"stream": False, "messages": [*CHAT, {"role": "assistant", "content": "", "tool_calls": [{}]}]},
        says="messages.1.tool_calls",
    ),
    Probe(
        "ollama-tool-calls-string",
        "/api/chat",
        {"stream": False, "messages": [*CHAT, {"role": "assistant", "content": "", "tool_calls": "abc"}]},
        says="messages.1.tool_calls",
    ),
    Probe(  # llama.cpp answers 500 for fields of the wrong type or value it reads itself
        "message-name-not-text",
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "hi", "name": 5}], "max_tokens": 1},
        says="Failed to parse messages",
        engine=True,
    ),
    Probe(
        "message-tool-call-id-null-template",
        "/apply-template",
        {"messages": [{"role": "user", "content": "hi", "tool_call_id": None}]},
        says="type must be string",
        engine=True,
    ),
    Probe(
        "text-part-without-text-ollama",
        "/api/chat",
        {"stream": False, "messages": [{"role": "user", "content": [{"type": "text"}]}]},
        says="Failed to parse messages",
        engine=True,
    ),
    Probe(
        "reasoning-format-unknown",
        "/v1/chat/completions",
        {"messages": CHAT, "max_tokens": 1, "reasoning_format": "x"},
        says="Unknown reasoning format",
        engine=True,
    ),
    Probe(
        "reasoning-content-not-text-responses",
        "/v1/responses",
        {"input": [{"role": "user", "content": "hi", "reasoning_content": 5}], "max_output_tokens": 1},
        says="type must be string",
        engine=True,
    ),
    Probe(  # counting a chat's tokens reads its tools as a completion does
        "input-tokens-tool-without-type",
        "/v1/chat/completions/input_tokens",
        {"messages": CHAT, "tools": [{}]},
        says="tools.0",
    ),
    Probe(
        "input-tokens-tool-ref-chain",
        "/v1/chat/completions/input_tokens",
        {"messages": CHAT, "tools": [tool(ref_chain(3000))]},
        says="MAX_SCHEMA_DEPTH",
    ),
    Probe(
        "input-tokens-tool-of-another-type",
        "/v1/chat/completions/input_tokens",
        {"messages": CHAT, "tools": [{"type": "text"}]},
        says="tools.0",
    ),
    Probe(  # the gateway's own 500: it read the seed to tell whether a rerun is the same
        "ollama-seed-not-number",
        "/api/chat",
        {"stream": False, "messages": CHAT, "options": {"seed": []}},
        says="seed",
        engine=True,
    ),
    Probe("detokenize-negative", "/detokenize", {"tokens": [-1]}, says="tokens.0"),
    Probe("detokenize-past-vocabulary", "/detokenize", {"tokens": [5, 999_999]}, says="vocabulary"),
    Probe("events-from-huge", "/jobs/{job}/events?from=99999999999999999999999-0", method="GET", status=422),
    Probe("events-from-huge-sequence", "/jobs/{job}/events?from=1-99999999999999999999999", method="GET", status=422),
    Probe("events-from-arabic-digits", "/jobs/{job}/events?from=%D9%A1-0", method="GET", status=422),
    # images
    Probe(
        "png-info-too-many-pixels",
        "/sdapi/v1/png-info",
        {"image": b64(png(20_000, 20_000, [(b"IDAT", zlib.compress(b""))]))},
        says="pixels",
    ),
]


@dataclass
class Stack:
    gateway: Gateway
    image_worker: Proc
    job: str  # a finished job of TOKEN's

    def client(self) -> httpx.Client:
        return self.gateway.client()


@pytest.fixture(scope="module")
def stack(cluster: Cluster, gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    models: Path = tmp_path_factory.mktemp("hostile-sd")
    build_models_folder(models)
    image_worker = cluster.sd_worker(models)
    with gateway.client() as http:
        job = http.post("/jobs", json={"route": "/completion", "body": {"prompt": "hi", "n_predict": 1}}).json()["id"]
        wait_until(lambda: http.get(f"/jobs/{job}").json()["state"] == "completed", 60, "the probing token's job")
    yield Stack(gateway, image_worker, job)
    image_worker.stop()


def _message(path: str, body: Any, engine: bool = False) -> str:
    """The error's message, checking the shape of the route's dialect (the engine's for an error the engine
    answered on the routes whose clients read that shape: llama.cpp's and OpenAI's)."""
    if engine and not path.startswith(("/api/", "/sdapi/", "/v1/messages")):
        assert isinstance(body["error"]["code"], int)
        return str(body["error"]["message"])
    if path.startswith("/api/"):
        assert isinstance(body["error"], str)
        return str(body["error"])
    if path.startswith("/sdapi/"):
        return str(body["detail"])
    error = body["error"]
    if path.startswith("/v1/messages"):  # Anthropic's shape
        assert body["type"] == "error" and {"message", "type"} <= error.keys()
    elif path.startswith("/v1/"):
        assert {"message", "type", "param", "code"} <= error.keys()
    else:
        assert isinstance(error["code"], int)
    return str(error["message"])


@pytest.mark.parametrize("probe", PROBES, ids=[p.name for p in PROBES])
def test_probe_gets_a_clear_4xx(stack: Stack, probe: Probe) -> None:
    path = probe.path.replace("{job}", stack.job)
    with stack.client() as http:
        answer = http.request(probe.method, path, json=probe.body, headers=probe.headers)
    assert answer.status_code == probe.status, answer.text[:500]
    assert probe.says in _message(path, answer.json(), probe.engine)
    assert stack.gateway.worker.alive() and stack.image_worker.alive()


def _raw_request(base: str, head: bytes, first_part: bytes) -> bytes:
    """Send the request line and headers and the first part of a body that is much longer, then read: the
    answer must come while most of the body is still unsent."""
    url = urlsplit(base)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(head + first_part)
        return sock.recv(65536)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_bad_token_is_refused_before_the_body_is_read(stack: Stack, framing: str) -> None:
    """48 MB of `[{},{},...]` with a junk token took 1.9 s and 1.2 GB of api memory before its 401."""
    part = b"[" + b"{}," * 20_000
    if framing == "chunked":
        length, part = b"Transfer-Encoding: chunked", b"%x\r\n%s\r\n" % (len(part), part)
    else:
        length = b"Content-Length: 50000000"
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer junk\r\n"
        b"Content-Type: application/json\r\n" + length + b"\r\n\r\n"
    )
    reply = _raw_request(stack.gateway.base, head, part)
    assert reply.startswith(b"HTTP/1.1 401"), reply[:200]
    assert b"connection: close" in reply.lower()  # the rest of the body is never read


def test_png_info_reads_the_infotext_without_decoding_pixels(stack: Stack) -> None:
    """As A1111: the text chunks before the pixels are all it needs (pixel data here is broken)."""
    image = png(64, 64, [(b"tEXt", b"parameters\x00a cat\nSteps: 3, Seed: 5"), (b"IDAT", b"not zlib")])
    with stack.client() as http:
        info = http.post("/sdapi/v1/png-info", json={"image": b64(image)})
    assert info.status_code == 200, info.text
    assert info.json()["info"] == "a cat\nSteps: 3, Seed: 5" and info.json()["parameters"]["Seed"] == 5


def test_the_stack_is_whole_after_the_probes(stack: Stack) -> None:
    """Runs after the probes (pytest keeps the module's order)."""
    with stack.client() as http:
        assert http.get("/health").status_code == 200

        def nothing_active() -> bool:  # (other modules of the session may leave jobs waiting for no worker)
            return all(p["active"] == 0 for p in http.get("/queue/status").json()["pools"])

        wait_until(nothing_active, 30, "no job left active")
        text = http.post("/completion", json={"prompt": "Hello", "n_predict": 2})
        image = http.post("/sdapi/v1/txt2img", json={"prompt": "a cat", "width": 64, "height": 64, "steps": 2})
    assert text.status_code == 200 and text.json()["tokens_predicted"] >= 1
    assert image.status_code == 200 and len(image.json()["images"]) == 1
    assert stack.gateway.worker.alive() and stack.image_worker.alive()
