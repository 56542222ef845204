"""Runs text jobs on a llama.cpp server (embedded or external) over HTTP, passing its bytes through."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import orjson
from prometheus_client.parser import text_string_to_metric_families

from graycat.chat_templates import template_name
from graycat.jobs import Job, error_body
from graycat.workers.engines.base import Emit
from graycat.workers.engines.supervisor import Child, EngineProcess
from graycat.workers.engines.tenant_slots import ForeignSlot, PromptCache, TenantSlots, UnknownSlot

_JSON = {"Content-Type": "application/json"}
METRICS_POLL_S = 2.0  # as often as the worker heartbeats, which carries the figures
log = logging.getLogger(__name__)


class EngineError(Exception):
    """The engine could not be reached or answered something unusable."""


def engine_props(props: dict[str, Any]) -> dict[str, Any]:
    """What the engine's `/props` says that holds through the gateway: its generation defaults, chat template,
    modalities and build, with the model file's name only (not the worker's folders)."""
    kept = {k: v for k, v in props.items() if k not in ("model_alias", "total_slots", "media_marker")}
    if path := kept.get("model_path"):
        kept["model_path"] = str(path).replace("\\", "/").rsplit("/", 1)[-1]
    return kept


class LlamaHttpEngine:
    """A llama.cpp-compatible server (`llama-server`, `undreamai_server`, xllamacpp) given by its base URL, or
    the embedded one in a supervised child `process` (its URL changes when it restarts after a crash)."""

    kind = "llm"

    def __init__(
        self,
        base_url: str,
        model_name: str | None = None,
        *,
        embeddings: bool = False,
        template_override: str | None = None,
        prompt_cache: PromptCache = "tenant",
        process: EngineProcess | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._process = process
        self.model_name = model_name
        self.embeddings = embeddings
        self.slots = 1
        self.n_ctx = 0
        self.template = template_name(None)
        self._template_override = template_override  # a built-in template name the server was started with
        self._pooled: aiohttp.ClientSession | None = None
        self._fresh: aiohttp.ClientSession | None = None
        self._active = 0
        self._served = 0
        self._figures: dict[str, float] = {}
        self._poller: asyncio.Task[None] | None = None
        self._prompt_cache = prompt_cache
        self._tenants = TenantSlots(1, prompt_cache)
        self.props: dict[str, Any] = {}

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None, connect=10)
        self._pooled = aiohttp.ClientSession(
            timeout=timeout, read_bufsize=1 << 16, connector=aiohttp.TCPConnector(limit=0)
        )
        # The llama.cpp server closes the connection after a stream without saying so: one per stream.
        self._fresh = aiohttp.ClientSession(
            timeout=timeout, read_bufsize=1 << 16, connector=aiohttp.TCPConnector(limit=0, force_close=True)
        )
        props = await self._get_json("/props")
        self.props = engine_props(props)
        self.slots = int(props.get("total_slots") or 1)
        self.n_ctx = int((props.get("default_generation_settings") or {}).get("n_ctx") or 0)
        self._tenants = TenantSlots(self.slots, self._prompt_cache)
        self.template = template_name(self._template_override or props.get("chat_template"))
        if not self.model_name:
            path = str(props.get("model_path") or "model")
            self.model_name = path.replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".gguf")
        if await self._read_figures():
            self._poller = asyncio.create_task(self._poll_figures(), name="engine-metrics")
        else:
            log.info(
                "the llama.cpp server at %s has no /metrics (start it with --metrics for token counts)", self.base_url
            )

    async def _target(self) -> tuple[str, Child | None]:
        """The engine's base URL now, and the run of its process that serves it (None: an external server)."""
        if self._process is None:
            return self.base_url, None
        child = await self._process.current()
        return child.address.rstrip("/"), child

    async def _read_figures(self) -> bool:
        """Read the engine's own Prometheus counters (tokens, seconds, queue); False when it has none."""
        assert self._pooled is not None
        base, _ = await self._target()
        try:
            async with self._pooled.get(base + "/metrics") as resp:
                if resp.status != 200:
                    return False
                families = list(text_string_to_metric_families((await resp.read()).decode()))
        except (aiohttp.ClientError, ValueError) as exc:
            log.debug("engine metrics unreadable: %s", exc)
            return False
        self._figures = {
            sample.name.removeprefix("llamacpp:"): sample.value for family in families for sample in family.samples
        }
        return True

    async def _poll_figures(self) -> None:
        while True:
            await asyncio.sleep(METRICS_POLL_S)
            await self._read_figures()

    async def _get_json(self, path: str) -> dict[str, Any]:
        assert self._pooled is not None
        try:
            async with self._pooled.get(self.base_url + path) as resp:
                if resp.status != 200:
                    raise EngineError(f"{self.base_url}{path} answered {resp.status}")
                return orjson.loads(await resp.read())
        except aiohttp.ClientError as exc:
            raise EngineError(f"cannot reach the llama.cpp server at {self.base_url}: {exc}") from exc

    def models(self) -> dict[str, dict[str, Any]]:
        assert self.model_name
        return {
            self.model_name: {
                "kind": self.kind,
                "n_ctx": self.n_ctx,
                "slots": self.slots,
                "template": self.template,
                "embeddings": self.embeddings,
                "props": self.props,
            }
        }

    def stats(self) -> dict[str, Any]:
        process = {"process": self._process.stats()} if self._process is not None else {}
        return {"active": self._active, "served": self._served, "llamacpp": self._figures, **process}

    async def run(self, job: Job, emit: Emit) -> tuple[int, bytes]:
        assert self._pooled is not None and self._fresh is not None
        if job.endpoint.startswith("/slots/"):
            return await self._slot_action(job)
        base, child = await self._target()
        body, slot = self._tenants.prepare(job.endpoint, job.owner, job.body, job.slots)
        self._active += 1
        try:
            if not job.stream:
                return _client_error(*await self._request(base, job.endpoint, body))
            async with self._fresh.post(base + job.endpoint, data=body, headers=_JSON) as resp:
                if resp.status != 200:
                    return _client_error(resp.status, await resp.read())
                pending = b""
                async for data in resp.content.iter_any():
                    pending += data
                    while (end := pending.find(b"\n\n")) >= 0:
                        event, pending = pending[:end], pending[end + 2 :]
                        if event.startswith(b"data: "):  # `: ping` comments are not forwarded
                            emit(event[6:])
                        elif event.startswith(b"event: ") and (at := event.find(b"\ndata: ")) > 0:
                            emit(event[at + 7 :])  # Anthropic / Responses events: their data names the type
                return 200, b""
        except aiohttp.ClientError as exc:
            if child is not None and await child.died():
                raise child.crash() from exc
            raise EngineError(f"llama.cpp server error: {exc}") from exc
        finally:
            self._tenants.release(slot, job.endpoint)
            self._active -= 1
            self._served += 1

    async def _slot_action(self, job: Job) -> tuple[int, bytes]:
        """Save, restore or erase a slot (`/slots/<n>?action=...`) when the slot is the job's token's."""
        index, _, action = job.endpoint.removeprefix("/slots/").partition("?action=")
        try:
            self._tenants.begin_action(int(index), action, job.owner)
        except ForeignSlot as exc:
            return 403, error_body(403, str(exc), "permission_error")
        except UnknownSlot as exc:
            return 400, error_body(400, str(exc), "invalid_request_error")
        status = 0
        base, child = await self._target()
        try:
            status, body = await self._request(base, job.endpoint, job.body)
            return status, body
        except aiohttp.ClientError as exc:
            if child is not None and await child.died():
                raise child.crash() from exc
            raise EngineError(f"llama.cpp server error: {exc}") from exc
        finally:
            self._tenants.end_action(int(index), action, job.owner, status == 200)

    async def _request(self, base: str, endpoint: str, body: bytes) -> tuple[int, bytes]:
        assert self._pooled is not None
        for attempt in (1, 2):
            try:
                async with self._pooled.post(base + endpoint, data=body, headers=_JSON) as resp:
                    return resp.status, await resp.read()
            except aiohttp.ServerDisconnectedError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Close its connections, and stop the embedded server's process (a model deleted while the worker runs)."""
        if self._poller is not None:
            self._poller.cancel()
        for session in (self._pooled, self._fresh):
            if session is not None:
                await session.close()
        if self._process is not None:
            await self._process.close()


_UNSUPPORTED_MEDIA = (b"image input is not supported", b"audio input is not supported")
# llama.cpp's 500s that are about the request: a field of the wrong type or missing (nlohmann's exceptions), a
# message it cannot read, an unknown reasoning format
_BAD_INPUT = (b"[json.exception.", b"Failed to parse messages", b"Unknown reasoning format")


def _client_error(status: int, body: bytes) -> tuple[int, bytes]:
    """The engine's answer, except that its 500s for what the client sent are the client's error: a 400 with
    the engine's message, or for media the model cannot take (no multimodal projector) one that says so."""
    if status == 500 and any(marker in body for marker in _BAD_INPUT):
        try:
            message = str(orjson.loads(body)["error"]["message"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            message = body.decode(errors="replace")
        return 400, error_body(400, message)
    if status == 500 and any(marker in body for marker in _UNSUPPORTED_MEDIA):
        kind = "image" if _UNSUPPORTED_MEDIA[0] in body else "audio"
        return 400, error_body(
            400,
            f"{kind} input is not supported: this model has no {kind} support (its worker "
            "runs no multimodal projector); send text only, or use a model that has it",
        )
    return status, body
