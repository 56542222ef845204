"""`python -m graycat.workers.engines.llama_process CONFIG_JSON`: the embedded llama.cpp server in a process of
its own, a child of the worker. It prints the server's URL on stdout, then serves until the worker closes its
stdin or dies. A native crash (a grammar that overflows llama.cpp's parser stack) ends only this process."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

from graycat.logs import setup_logging
from graycat.workers.engines.child import announce, bind_to_parent, refuse, wait_for_parent
from graycat.workers.engines.llama_server import EmbeddedLlamaServer


def config(server: EmbeddedLlamaServer, template: str | None, log: tuple[str, str]) -> str:
    """The command-line argument that starts `server`'s twin in a child process (`log`: level and format)."""
    return orjson.dumps(
        {
            "model_path": str(server.model_path),
            "alias": server.alias,
            "slots": server.slots,
            "ctx_per_slot": server.ctx_per_slot,
            "threads": server.threads,
            "gpu_layers": server.gpu_layers,
            "poll": server.poll,
            "nice": server.nice,
            "embeddings": server.embeddings,
            "shared_cache": server.shared_cache,
            "slot_dir": str(server.slot_dir) if server.slot_dir else None,
            "chat_template": template,
            "log": log,
        }
    ).decode()


def main(argv: list[str]) -> None:
    bind_to_parent()
    params: dict[str, Any] = orjson.loads(argv[0])
    setup_logging(*params.pop("log"))
    slot_dir = params.pop("slot_dir")
    server = EmbeddedLlamaServer(
        Path(params.pop("model_path")), slot_dir=Path(slot_dir) if slot_dir else None, **params
    )
    try:
        url = server.start()
    except Exception as exc:
        refuse(exc)
    announce(url)
    wait_for_parent()


if __name__ == "__main__":
    main(sys.argv[1:])
