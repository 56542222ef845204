"""A local stand-in for the Hugging Face Hub (nobody can reach the real one from the test machines): the routes
`huggingface_hub` calls to list a repository (`/api/models/OWNER/REPO/tree/REV`) and to fetch a file
(`/OWNER/REPO/resolve/REV/PATH`, with Range), plus plain `/files/NAME` URLs. Faults on demand: a connection dropped
mid-file, the server refusing downloads for a while, a corrupted byte; gated repositories that need a token."""

from __future__ import annotations

import contextlib
import hashlib
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import orjson

from graycat.workers.engines.llama_server import DEFAULT_MODEL_FILE, default_model_path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class HubFile:
    data: bytes
    listed_size: int | None = None  # the size the listing states, when it is not the data's (a huge file)
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        self.sha256 = hashlib.sha256(self.data).hexdigest()


@dataclass
class Faults:
    drop_after: int | None = None  # the next download stops after this many body bytes (connection closed)
    refuse: int = 0  # the next N downloads answer 503
    refuse_after_drop: int = 0  # after the drop, the next N downloads answer 503 (the link stays down)
    corrupt_at: int | None = None  # this byte of every file is sent flipped
    seconds_per_mb: float = 0.0  # a slow link: downloads pause this long after each MiB
    ranges: list[str | None] = field(default_factory=list)  # the Range header of each download, in order


class FakeHub:
    """Repositories of files by path, served on a free loopback port until `close`."""

    def __init__(self, repos: dict[str, dict[str, HubFile]], gated: dict[str, str] | None = None) -> None:
        self.repos = repos
        self.gated = gated or {}  # repository -> the token it needs (as HF_TOKEN sends it)
        self.faults = Faults()
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that left is no error of the hub
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return None

        def do_GET(self) -> None:
            self._answer(body=True)

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def _answer(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            if tree := re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/.*)?", path):
                self._tree(tree.group(1))
            elif resolve := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
                self._file(hub.repos.get(resolve.group(1)), resolve.group(3), body, resolve.group(1))
            elif plain := re.fullmatch(r"/files/(.+)", path):
                self._file(hub.repos.get("files"), plain.group(1), body, None)
            else:
                self._send(404, b"no such route", {})

        def _refused(self, repo: str | None) -> bool:
            """A gated repository asked without its token: 401, as the Hub answers."""
            token = hub.gated.get(repo or "")
            if token is None or self.headers.get("Authorization") == f"Bearer {token}":
                return False
            self._send(401, b'{"error":"Access to this model is restricted"}', {"X-Error-Code": "GatedRepo"})
            return True

        def _tree(self, repo: str) -> None:
            if self._refused(repo):
                return
            files = hub.repos.get(repo)
            if files is None:
                self._send(404, b'{"error":"Repository not found"}', {"X-Error-Code": "RepoNotFound"})
                return
            listing = [
                {
                    "type": "file",
                    "oid": hashlib.sha1(f.data).hexdigest(),
                    "size": f.listed_size or len(f.data),
                    "path": p,
                    "lfs": {"oid": f.sha256, "size": f.listed_size or len(f.data), "pointerSize": 134},
                }
                for p, f in sorted(files.items())
            ]
            self._send(200, orjson.dumps(listing), {"Content-Type": "application/json"})

        def _file(self, files: dict[str, HubFile] | None, name: str, body: bool, repo: str | None) -> None:
            if self._refused(repo):
                return
            found = (files or {}).get(name)
            if found is None:
                code = "RepoNotFound" if files is None else "EntryNotFound"
                self._send(404, b"not found", {"X-Error-Code": code, "X-Repo-Commit": COMMIT})
                return
            data = found.data
            if hub.faults.corrupt_at is not None:
                at = hub.faults.corrupt_at
                data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
            headers = {
                "Accept-Ranges": "bytes",
                "ETag": f'"{found.sha256}"',
                "X-Repo-Commit": COMMIT,
                "Content-Type": "application/octet-stream",
            }
            if repo is not None:
                headers |= {"X-Linked-Etag": f'"{found.sha256}"', "X-Linked-Size": str(len(data))}
            if not body:
                self._send(200, b"", headers | {"Content-Length": str(len(data))}, head=True)
                return
            hub.faults.ranges.append(self.headers.get("Range"))
            if hub.faults.refuse > 0:
                hub.faults.refuse -= 1
                self._send(503, b"try later", {})
                return
            start = 0
            if (wanted := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")) is not None:
                start = int(wanted.group(1))
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            part = data[start:]
            drop, hub.faults.drop_after = hub.faults.drop_after, None
            self.send_response(206 if start else 200)
            for key, value in (headers | {"Content-Length": str(len(part))}).items():
                self.send_header(key, value)
            self.end_headers()
            self._write(part if drop is None else part[:drop])
            if drop is not None:  # the connection goes down mid-file
                hub.faults.refuse = hub.faults.refuse_after_drop
                self.wfile.flush()
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)

        def _write(self, data: bytes) -> None:
            step = 2**20
            try:
                for at in range(0, len(data), step):
                    self.wfile.write(data[at : at + step])
                    if hub.faults.seconds_per_mb:
                        time.sleep(hub.faults.seconds_per_mb)
            except (BrokenPipeError, ConnectionResetError):  # the client left (an interrupted pull)
                self.close_connection = True

        def _send(self, status: int, data: bytes, headers: dict[str, str], head: bool = False) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not head:
                self.wfile.write(data)

    return Handler


SMOLLM_REPO = "graycat-test/SmolLM2-135M-Instruct-GGUF"
GATED_REPO, GATED_TOKEN = "graycat-test/gated", "hf_test_token"


def smollm_hub(model: HubFile, model_file: str) -> FakeHub:
    """A Hub whose SMOLLM_REPO holds the real SmolLM2 GGUF as `model_file`, beside stand-ins of other
    quantisations (Q4_K_M, Q4_K_S, an F32 listed as 10 PB, a Q8_0 in two parts) and a README;
    `graycat-test/no-gguf` holds a README only, `graycat-test/image-model` a diffusers model, GATED_REPO a GGUF
    for GATED_TOKEN only; `/files/` serves the GGUF as a plain URL."""
    stub = HubFile(b"GGUF not a model")
    return FakeHub(
        {
            SMOLLM_REPO: {
                model_file: model,
                "SmolLM2-135M-Instruct.Q4_K_M.gguf": stub,
                "SmolLM2-135M-Instruct.Q4_K_S.gguf": stub,
                "README.md": HubFile(b"# SmolLM2\n"),
                "SmolLM2-135M-Instruct.F32.gguf": HubFile(b"GGUF", listed_size=10**16),
                "Q8_0/SmolLM2-135M-Instruct.Q8_0-00001-of-00002.gguf": stub,
                "Q8_0/SmolLM2-135M-Instruct.Q8_0-00002-of-00002.gguf": stub,
            },
            "graycat-test/no-gguf": {"README.md": HubFile(b"# nothing here\n")},
            "graycat-test/image-model": {"model_index.json": HubFile(b"{}"), "unet/model.safetensors": stub},
            GATED_REPO: {"gated.Q4_0.gguf": stub},
            "files": {model_file: model},
        },
        gated={GATED_REPO: GATED_TOKEN},
    )


def default_model_hub() -> Iterator[FakeHub]:
    """A `smollm_hub` serving the default model's file under its own name, closed afterwards (the body of the
    e2e tests' `hub` fixture)."""
    served = smollm_hub(HubFile(default_model_path().read_bytes()), DEFAULT_MODEL_FILE)
    yield served
    served.close()
