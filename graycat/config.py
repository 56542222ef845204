"""Settings from the environment and `.env`, with the original deployment's names where they exist."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from graycat.queue import sentinel

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"


class ConfigError(Exception):
    """Invalid configuration; the message names the setting."""


class Settings(BaseSettings):
    """Every setting of the api, the workers and `graycat up`. Environment names are the field aliases."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    api_tokens: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias="API_TOKENS",
        description="Comma-separated Bearer tokens accepted by the API.",
    )
    redis_url: str | None = Field(
        None, validation_alias="REDIS_URL", description="redis:// or rediss:// URL; overrides REDIS_HOST/PORT/PASS."
    )
    redis_host: str = Field("127.0.0.1", validation_alias="REDIS_HOST")
    redis_port: int = Field(6379, ge=1, le=65535, validation_alias="REDIS_PORT")
    redis_pass: str | None = Field(None, validation_alias="REDIS_PASS")
    default_model: str | None = Field(
        None,
        validation_alias="DEFAULT_MODEL",
        description="Model used when a request names none (or 'default'); unset: the one model live workers serve "
        "(the one a worker declares with --default when they serve several). Requests for it wait "
        "for a worker even when none serves it yet.",
    )
    llm_default: bool = Field(
        False,
        validation_alias="LLM_DEFAULT",
        description="This LLM worker's first model is the default of requests that name none "
        "(when DEFAULT_MODEL is unset and live workers serve several models).",
    )
    model_aliases: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        validation_alias="MODEL_ALIASES",
        description="Names clients send, mapped to served models: 'gpt-4o-mini=default,text-embedding-3-small="
        "nomic'; '*=default' takes any name a worker does not serve (as a single-model llama-server).",
    )
    queue_timeout: float = Field(
        120.0, gt=0, validation_alias="QUEUE_TIMEOUT", description="Seconds a request waits for a worker before 503."
    )
    job_timeout: float = Field(
        600.0, gt=0, validation_alias="JOB_TIMEOUT", description="Seconds a running job may take before 504."
    )
    queue_timeouts: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict,
        validation_alias="QUEUE_TIMEOUTS",
        description="Per kind of job, e.g. 'sd=600,llm=60': overrides QUEUE_TIMEOUT for that kind.",
    )
    job_timeouts: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict,
        validation_alias="JOB_TIMEOUTS",
        description="Per kind of job, e.g. 'sd=1800': overrides JOB_TIMEOUT for that kind.",
    )
    max_waiting: int = Field(
        1000,
        ge=0,
        validation_alias="MAX_WAITING",
        description="Waiting jobs a pool accepts before 503 queue_full (0: no limit).",
    )
    max_waiting_per_token: int = Field(
        100,
        ge=0,
        validation_alias="MAX_WAITING_PER_TOKEN",
        description="Waiting jobs one token may have before 503 queue_full (0: none).",
    )
    stop_timeout: float = Field(
        25.0,
        ge=0,
        validation_alias="STOP_TIMEOUT",
        description="Seconds a stopping worker lets its jobs finish before handing them back to the queue.",
    )
    visibility_timeout: float = Field(
        6.0,
        ge=5,
        validation_alias="VISIBILITY_TIMEOUT",
        description="Seconds without a heartbeat after which another worker takes over a running job.",
    )
    max_deliveries: int = Field(
        3,
        ge=1,
        validation_alias="MAX_DELIVERIES",
        description="Deliveries of a job before it fails into the dead-letter registry.",
    )
    result_ttl: int = Field(
        3600, gt=0, validation_alias="RESULT_TTL", description="Seconds job records and events are kept after the end."
    )
    result_max_mb: float = Field(
        16.0,
        gt=0,
        validation_alias="RESULT_MAX_MB",
        description="Largest answer a worker stores for a job, in MiB; a job whose answer "
        "is larger fails with 413 result_too_large.",
    )
    result_max_mbs: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=lambda: {"sd": 256.0},
        validation_alias="RESULT_MAX_MBS",
        description="Per kind of job, e.g. 'sd=256': overrides RESULT_MAX_MB for that kind (images are large).",
    )
    admin_tokens: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias="ADMIN_TOKENS",
        description="Comma-separated tokens for the admin routes (token management, usage).",
    )
    rate_limit_rpm: int = Field(
        0,
        ge=0,
        validation_alias="RATE_LIMIT_RPM",
        description="Requests per minute per token, unless the token sets its own (0: no limit, the default).",
    )
    rate_limit_concurrency: int = Field(
        0,
        ge=0,
        validation_alias="RATE_LIMIT_CONCURRENCY",
        description="Requests one token may have in flight, unless the token sets its own (0: no limit, the default).",
    )
    max_prompts: int = Field(
        8,
        ge=1,
        validation_alias="MAX_PROMPTS",
        description="Completions one text request may ask for (prompts x n); each takes an "
        "engine slot of the worker that runs it.",
    )
    redis_max_connections: int = Field(
        512,
        ge=8,
        validation_alias="REDIS_MAX_CONNECTIONS",
        description="Redis connections each pool of an api process opens at most.",
    )
    redis_pool_timeout: float = Field(
        5.0,
        gt=0,
        validation_alias="REDIS_POOL_TIMEOUT",
        description="Seconds a request waits for a free Redis connection before 503.",
    )
    job_polls_per_token: int = Field(
        16,
        ge=0,
        validation_alias="JOB_POLLS_PER_TOKEN",
        description="GET /jobs/{id} one token may have running at once per api process before 429 (0: no limit).",
    )
    job_streams_per_token: int = Field(
        16,
        ge=0,
        validation_alias="JOB_STREAMS_PER_TOKEN",
        description="Open GET /jobs/{id}/events streams per token and api process before 429 (0: no limit).",
    )
    max_body_mb: float = Field(
        64.0,
        gt=0,
        validation_alias="MAX_BODY_MB",
        description="Largest request body accepted, in MB; larger ones get 413.",
    )
    max_grammar_bytes: int = Field(
        262144,
        ge=1,
        validation_alias="MAX_GRAMMAR_BYTES",
        description="Largest GBNF grammar or regular expression a request may send.",
    )
    max_grammar_depth: int = Field(
        200,
        ge=1,
        validation_alias="MAX_GRAMMAR_DEPTH",
        description="Deepest nesting of groups in a grammar or regular expression.",
    )
    max_schema_bytes: int = Field(
        262144,
        ge=1,
        validation_alias="MAX_SCHEMA_BYTES",
        description="Largest total size of a request's JSON schemas (formats, tools).",
    )
    max_schema_depth: int = Field(
        128,
        ge=1,
        validation_alias="MAX_SCHEMA_DEPTH",
        description="Deepest nesting of a JSON schema, each $ref followed a level.",
    )
    max_n_probs: int = Field(
        100,
        ge=0,
        validation_alias="MAX_N_PROBS",
        description="Most probabilities per generated token a request may ask for (n_probs, top_logprobs, logprobs).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias="CORS_ORIGINS",
        description="Comma-separated origins browsers may call from with credentials mode (WebGL, web "
        "apps); unset: any origin, without credentials (the token is a header).",
    )
    log_prompts: bool = Field(
        False,
        validation_alias="LOG_PROMPTS",
        description="Log each job's request body (prompts) at INFO; never by default.",
    )
    session_ttl: int = Field(
        3600,
        gt=0,
        validation_alias="SESSION_TTL",
        description="Seconds a conversation session is kept after its last turn.",
    )
    session_max_messages: int = Field(
        200,
        ge=2,
        validation_alias="SESSION_MAX_MESSAGES",
        description="Messages a session keeps (the oldest go first).",
    )
    session_max_message_kb: int = Field(
        256,
        ge=1,
        validation_alias="SESSION_MAX_MESSAGE_KB",
        description="Largest message a session keeps, in KiB; a larger one gets 413.",
    )
    session_max_kb: int = Field(
        1024,
        ge=1,
        validation_alias="SESSION_MAX_KB",
        description="KiB of messages a session keeps (the oldest go first).",
    )
    sessions_max_mb_per_token: int = Field(
        16,
        ge=1,
        validation_alias="SESSIONS_MAX_MB_PER_TOKEN",
        description="MiB of sessions one token keeps; past it its least recently used sessions are forgotten.",
    )
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")
    log_format: Literal["json", "text"] = Field(
        "json",
        validation_alias="LOG_FORMAT",
        description="json: one JSON object per line (for Loki and other collectors); text: for reading by eye.",
    )
    metrics_token: str | None = Field(
        None,
        validation_alias="METRICS_TOKEN",
        description="Bearer token that GET /metrics requires; unset: /metrics answers private addresses only.",
    )
    data_dir: Path = Field(
        Path(".graycat"),
        validation_alias="GRAYCAT_DATA_DIR",
        description="Folder of `graycat up` (its Redis data, its generated API token) and of the "
        "workers' saved slots (slots/<model>/).",
    )
    host: str = Field(
        "127.0.0.1",
        min_length=1,
        validation_alias="GRAYCAT_HOST",
        description="Address the API (`graycat api`, `graycat up`) listens on; 0.0.0.0: every one.",
    )
    port: int = Field(8000, ge=1, le=65535, validation_alias="GRAYCAT_PORT", description="Port of the API.")
    instance_id: str | None = Field(
        None,
        validation_alias="GRAYCAT_INSTANCE",
        description="Set by `graycat up` for its API, which shows it in /health: how "
        "`up` knows the API it reaches is its own.",
    )
    worker_metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        validation_alias="WORKER_METRICS_PORT",
        description="Port on which a worker also serves its own /metrics (for a worker Prometheus can reach).",
    )
    # llama.cpp worker
    model: str | None = Field(
        None,
        validation_alias="GRAYCAT_MODEL",
        description="GGUF file to serve: a path, or a reference the worker pulls at start "
        "(hf:OWNER/REPO[:QUANT], hf:OWNER/REPO/path/file.gguf, https:// URL).",
    )
    model_name: str | None = Field(
        None, validation_alias="MODEL_NAME", description="Name the model is served under (default: file stem)."
    )
    extra_models: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        validation_alias="GRAYCAT_MODELS",
        description="More GGUF models the same worker serves, 'name=path,name=ref'.",
    )
    models_dir: Path | None = Field(
        None,
        validation_alias="GRAYCAT_MODELS_DIR",
        description="Folder of pulled models (`graycat pull`, references given to "
        "workers); default: GRAYCAT_DATA_DIR/models.",
    )
    chat_templates: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        validation_alias="LLM_CHAT_TEMPLATES",
        description="Chat template overrides, 'template' for every model or 'name=template' per model: a "
        "llama.cpp built-in name (chatml, llama3, gemma, ...) or a Jinja file.",
    )
    llama_url: str | None = Field(
        None, validation_alias="LLAMA_URL", description="External llama.cpp server instead of the embedded one."
    )
    slots: int = Field(4, ge=1, le=256, validation_alias="LLM_SLOTS")
    ctx_per_slot: int = Field(2048, ge=64, validation_alias="LLM_CTX_PER_SLOT")
    threads: int | None = Field(None, ge=1, validation_alias="LLM_THREADS")
    poll: int = Field(
        0,
        ge=0,
        le=100,
        validation_alias="LLM_POLL",
        description="llama.cpp busy-wait level 0-100; 0 lets idle engine threads sleep.",
    )
    nice: int = Field(
        10,
        ge=0,
        le=19,
        validation_alias="LLM_NICE",
        description="Niceness of the embedded engine's threads; the gateway's work comes first.",
    )
    embeddings: bool = Field(
        False,
        validation_alias="LLM_EMBEDDINGS",
        description="Also serve embeddings (/embeddings, /v1/embeddings) with this worker.",
    )
    gpu_layers: int = Field(
        0, ge=-1, validation_alias="GPU_LAYERS", description="Layers offloaded to the GPU (-1: all)."
    )
    prompt_cache: Literal["tenant", "shared", "off"] = Field(
        "tenant",
        validation_alias="PROMPT_CACHE",
        description="Reuse of processed prompts: tenant (only a token's own, each token's requests kept on slots "
        "it used), shared (any token's: one trusted tenant), off (never).",
    )
    # Stable Diffusion worker and image requests
    sd_models_dir: Path | None = Field(
        None,
        validation_alias="SD_MODELS_DIR",
        description="A1111-style folder: checkpoints in DIR/models/Stable-diffusion.",
    )
    sd_a1111_url: str | None = Field(
        None,
        validation_alias="SD_A1111_URL",
        description="An Automatic1111 WebUI (started with --api) that the SD worker "
        "relays jobs to instead of running diffusers; "
        "http://user:password@host:7860 for --api-auth.",
    )
    sd_device: str = Field(
        "auto",
        min_length=1,
        validation_alias="SD_DEVICE",
        description="torch device of the SD worker: auto (cuda when present), cpu, cuda, cuda:1.",
    )
    sd_dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", validation_alias="SD_DTYPE", description="Weights' dtype; auto: float16 on CUDA, float32 on CPU."
    )
    sd_threads: int | None = Field(None, ge=1, validation_alias="SD_THREADS", description="torch CPU threads.")
    sd_attention_slicing: bool = Field(
        False, validation_alias="SD_ATTENTION_SLICING", description="Less GPU memory for attention, a little slower."
    )
    sd_vae_tiling: bool = Field(
        False, validation_alias="SD_VAE_TILING", description="Decode large images in tiles, for small GPUs."
    )
    sd_loaded_models: int = Field(
        1,
        ge=1,
        validation_alias="SD_LOADED_MODELS",
        description="Checkpoints an SD worker keeps loaded at once, the least recently used let go first (and all "
        "others when the device runs out of memory loading one).",
    )
    sd_preview_every: int = Field(
        10,
        ge=0,
        validation_alias="SD_PREVIEW_EVERY",
        description="Steps between the live previews an SD worker sends with its progress "
        "(/sdapi/v1/progress current_image); 0: none.",
    )
    sd_refresh_timeout: float = Field(
        120.0,
        gt=0,
        validation_alias="SD_REFRESH_TIMEOUT",
        description="Longest wait of /sdapi/v1/refresh-* for the SD workers to rescan "
        "their models folders (new files are hashed: about 1 s per GB).",
    )
    sd_default_model: str | None = Field(
        None,
        validation_alias="SD_DEFAULT_MODEL",
        description="Checkpoint of image requests that name none (default: the first served, by name).",
    )
    sd_max_size: int = Field(
        2048, ge=64, validation_alias="SD_MAX_SIZE", description="Largest width or height an image request may ask for."
    )
    sd_max_steps: int = Field(
        150, ge=1, validation_alias="SD_MAX_STEPS", description="Most sampling steps an image request may ask for."
    )
    sd_max_images: int = Field(
        16,
        ge=1,
        validation_alias="SD_MAX_IMAGES",
        description="Most images (batch_size x n_iter) one image request may ask for.",
    )

    @field_validator("api_tokens", "admin_tokens", "cors_origins", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    @field_validator("queue_timeouts", "job_timeouts", mode="before")
    @classmethod
    def _per_kind(cls, value: object) -> object:
        return _positive_per_kind(value, "seconds")

    @field_validator("result_max_mbs", mode="before")
    @classmethod
    def _mb_per_kind(cls, value: object) -> object:
        return _positive_per_kind(value, "MiB")

    @field_validator("model_aliases", mode="before")
    @classmethod
    def _aliases(cls, value: object) -> object:
        return _pairs(value, "alias=model") if isinstance(value, str) else value

    @field_validator("extra_models", "chat_templates", mode="before")
    @classmethod
    def _named(cls, value: object) -> object:
        """'name=value,name=value' pairs; a bare value applies to every model (key '*')."""
        return _pairs(value, "name=value", bare_key="*") if isinstance(value, str) else value

    def chat_template_for(self, name: str) -> str | None:
        return self.chat_templates.get(name, self.chat_templates.get("*"))

    def queue_timeout_for(self, kind: str) -> float:
        return self.queue_timeouts.get(kind, self.queue_timeout)

    def job_timeout_for(self, kind: str) -> float:
        return self.job_timeouts.get(kind, self.job_timeout)

    def result_max_bytes(self, kind: str) -> int:
        return int(self.result_max_mbs.get(kind, self.result_max_mb) * 1024 * 1024)

    def record_ttl(self) -> int:
        """Seconds a job record lives: the longest wait and run, then RESULT_TTL."""
        longest = max([self.queue_timeout, *self.queue_timeouts.values()]) + max(
            [self.job_timeout, *self.job_timeouts.values()]
        )
        return int(longest) + self.result_ttl

    @field_validator("default_model", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return value.strip() or None if isinstance(value, str) else value

    def served_model_name(self) -> str:
        """The name an LLM worker of these settings serves its (first) model under (for a Hub repository and tag,
        the stem of the file it names: the Hub is asked unless it was pulled before)."""
        if self.model_name or self.model is None:
            return self.model_name or DEFAULT_MODEL_NAME
        from graycat.store.sources import name_of

        return name_of(self.model, self.models_folder())

    def models_folder(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("redis_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")) and sentinel.parse(value) is None:
            raise ValueError("must start with redis://, rediss://, unix:// or redis+sentinel://")
        return value or None

    def resolved_redis_url(self) -> str:
        """REDIS_URL, or a URL built from REDIS_HOST / REDIS_PORT / REDIS_PASS."""
        if self.redis_url:
            return self.redis_url
        auth = f":{quote(self.redis_pass, safe='')}@" if self.redis_pass else ""
        return f"redis://{auth}{self.redis_host}:{self.redis_port}/0"


def _positive_per_kind(value: object, unit: str) -> object:
    """'kind=number,kind=number' (e.g. llm=300,sd=900) as a table of positive numbers."""
    if not isinstance(value, str):
        return value
    table = {kind: float(number) for kind, number in _pairs(value, f"kind={unit}").items()}
    if any(number <= 0 for number in table.values()):
        raise ValueError(f"{unit} must be positive")
    return table


def _pairs(text: str, shape: str, bare_key: str | None = None) -> dict[str, str]:
    """'key=value,key=value' as a dict; an item without '=' goes under `bare_key` when one is given."""
    table: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=") if "=" in item or bare_key is None else (bare_key, "=", item)
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"expected {shape} pairs separated by commas, got {item!r}")
        table[key.strip()] = value.strip()
    return table


def load_settings(**overrides: object) -> Settings:
    """Load settings, turning a validation failure into a ConfigError naming each bad setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "?"
            field = Settings.model_fields.get(name)
            alias = field.validation_alias if field else None
            if isinstance(alias, AliasChoices):
                alias = alias.choices[0]
            problems.append(f"{alias or name}: {err['msg'].removeprefix('Value error, ')}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
