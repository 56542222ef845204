"""A bare HTTP/1.1 client that shows the chunked framing of a response, as cpp-httplib (LLM for Unity v3) sees it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import orjson


class ChunkedResponse:
    """Reads a response chunk by chunk; each chunk is returned exactly as framed by the server."""

    def __init__(self, base: str, path: str, body: dict[str, object], token: str | None) -> None:
        url = urlsplit(base)
        self.sock = socket.create_connection((url.hostname, url.port), timeout=60)
        payload = orjson.dumps(body)
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: {url.netloc}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            "Accept: text/event-stream",
        ]
        if token:
            head.append(f"Authorization: Bearer {token}")
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        self.file = self.sock.makefile("rb")
        status_line = self.file.readline().decode()
        self.status = int(status_line.split()[1])
        self.headers: dict[str, str] = {}
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def chunks(self) -> Iterator[bytes]:
        assert self.headers.get("transfer-encoding") == "chunked", self.headers
        while True:
            size = int(self.file.readline().split(b";")[0], 16)
            data = self.file.read(size)
            assert self.file.read(2) == b"\r\n"
            if size == 0:
                return
            yield data

    def body(self) -> bytes:
        if "content-length" in self.headers:
            return self.file.read(int(self.headers["content-length"]))
        return b"".join(self.chunks())

    def close(self) -> None:
        self.file.close()
        self.sock.close()
