"""Every Redis key and channel name the system uses, in one place (the Lua scripts' too: `lua_function`)."""

from collections.abc import Callable

PREFIX = "gc"
GROUP = "workers"  # the consumer group of every pool stream
CANCEL_CHANNEL = f"{PREFIX}:cancel"  # pub/sub: job ids to cancel
SKIP_CHANNEL = f"{PREFIX}:skip"  # pub/sub: ids of image jobs whose current image to skip (A1111's skip)
WORKERS = f"{PREFIX}:workers"  # zset: worker id -> last heartbeat (unix time)
WORKER_TTL_S = 10.0  # a worker silent this long counts as gone (its heartbeat record expires with it)
MODELS = f"{PREFIX}:models"  # hash: model name -> JSON model info announced by workers
DIRECT_LANES = f"{PREFIX}:lanes"  # set: every worker's direct lane streams (see `direct_lane`)
DEAD = f"{PREFIX}:dead"  # stream: jobs that failed past the delivery cap, kept for debugging
TAKEOVER_CHANNEL = f"{PREFIX}:takeover"  # pub/sub: ids of dead workers whose jobs live workers may take over now


def alive(worker_id: str) -> str:
    """Pub/sub: a worker's presence channel; it stays subscribed while its process lives (see presence.py)."""
    return f"{PREFIX}:alive:{worker_id}"


PULLS_ANY = f"{PREFIX}:pulls:any"  # stream: model pull requests that any worker taking pulls may take


def pulls_of(worker_id: str) -> str:
    """Stream: model pull requests addressed to one worker (read before `PULLS_ANY`)."""
    return f"{PREFIX}:pulls:w:{worker_id}"


def pull_events(pull_id: str) -> str:
    """Stream: a model pull's progress, as its worker reports it, kept a while after it ends."""
    return f"{PREFIX}:pulls:ev:{pull_id}"


def refresh_channel(kind: str) -> str:
    """Pub/sub: ids of requests that the workers of `kind` read their models folder again (A1111's refresh-*)."""
    return f"{PREFIX}:refresh:{kind}"


def pool(kind: str, model: str) -> str:
    """Stream of waiting jobs for one (kind, model) pool."""
    return f"{PREFIX}:pool:{kind}:{model}"


POOL_PATTERN = f"{PREFIX}:pool:*"
POOLS = f"{PREFIX}:pools"
"""Set: the pool streams known to exist, kept by the api (a job queued, a worker announcing a model), so that
status and the janitor never scan the keyspace, whose job records grow with traffic."""


def parse_pool(key: str) -> tuple[str, str]:
    """(kind, model) of a pool stream key."""
    kind, _, model = key.removeprefix(f"{PREFIX}:pool:").partition(":")
    return kind, model


def job(job_id: str) -> str:
    """Hash: the job record (state, timings, worker, attempts)."""
    return f"{PREFIX}:job:{job_id}"


def events(job_id: str) -> str:
    """Stream: the job's events, kept for replay after the job ends."""
    return f"{PREFIX}:ev:{job_id}"


def cancel_flag(job_id: str) -> str:
    return f"{PREFIX}:cancel:{job_id}"


def reply_channel(instance_id: str) -> str:
    """Pub/sub channel of one api process: events of the jobs it submitted."""
    return f"{PREFIX}:reply:{instance_id}"


def worker(worker_id: str) -> str:
    """String: JSON heartbeat of a worker, expiring when it stops beating."""
    return f"{PREFIX}:worker:{worker_id}"


def pool_stats(kind: str, model: str) -> str:
    """Hash: counters per pool (completed, failed, cancelled, expired, redelivered, dead_lettered); scripts
    build it with `lua_function`."""
    return f"{PREFIX}:stats:{kind}:{model}"


def pool_minute(kind: str, model: str, minute: int) -> str:
    """Counter of the jobs a pool completed in one minute (unix time // 60), kept 25 hours."""
    return f"{PREFIX}:rate:{kind}:{model}:{minute}"


def idempotency(owner: str, key: str) -> str:
    """String: the job id a token's Idempotency-Key created."""
    return f"{PREFIX}:idem:{owner}:{key}"


def waiting_of(owner: str) -> str:
    """Sorted set: the jobs a token has waiting (job id -> enqueue time); scripts build it with
    `lua_function`."""
    return f"{PREFIX}:waiting:{owner}"


def session(owner: str, session_id: str) -> str:
    """List: a conversation's messages (JSON), scoped to the token that holds it."""
    return f"{PREFIX}:session:{owner}:{session_id}"


def direct_lane(worker_id: str, kind: str, model: str) -> str:
    """Stream: jobs meant for one worker (a session's, whose KV cache it holds); it reads them before its
    pools, and when it is gone they are moved to the pool."""
    return f"{PREFIX}:lane:{worker_id}:{kind}:{model}"


def parse_direct_lane(key: str) -> tuple[str, str, str]:
    """(worker id, kind, model) of a direct lane key."""
    worker_id, kind, model = key.removeprefix(f"{PREFIX}:lane:").split(":", 2)
    return worker_id, kind, model


def session_worker(owner: str, session_id: str) -> str:
    """String: the worker that answered a session's last turn."""
    return f"{PREFIX}:session-worker:{owner}:{session_id}"


def sessions_of(owner: str) -> str:
    """Sorted set: a token's sessions (session id -> time of its last turn), oldest first when over budget."""
    return f"{PREFIX}:sessions:{owner}"


def session_sizes(owner: str) -> str:
    """Hash: the bytes each of a token's sessions keeps (session id -> bytes)."""
    return f"{PREFIX}:session-bytes:{owner}"


TOKENS = f"{PREFIX}:tokens"  # set: the hashes of every managed token


def token(token_hash: str) -> str:
    """Hash: a managed token's record (name, limits, scope, expiry), under the SHA-256 of its secret."""
    return f"{PREFIX}:token:{token_hash}"


def recent_requests(owner: str) -> str:
    """Sorted set: a token's requests of the last 60 s (admission tickets scored by unix time)."""
    return f"{PREFIX}:rpm:{owner}"


def in_flight(owner: str) -> str:
    """Sorted set: a token's requests being answered (admission ticket -> start time) and its jobs submitted
    through POST /jobs that have not ended (job id -> submit time)."""
    return f"{PREFIX}:inflight:{owner}"


def reserved(owner: str, what: str) -> str:
    """Sorted set: a token's reservations of its daily quota of `what` (completion_tokens, images) by jobs that
    have not ended ('<job id>:<amount>' -> the time the reservation lapses)."""
    return f"{PREFIX}:reserved:{owner}:{what}"


USAGE_KEEP_S = 40 * 86400  # how long a `usage` hash is kept


def usage(owner: str, day: str) -> str:
    """Hash: a token's usage on one day (YYYY-MM-DD, UTC): requests, jobs, errors, tokens, images; kept
    USAGE_KEEP_S."""
    return f"{PREFIX}:usage:{owner}:{day}"


def image_options(owner: str) -> str:
    """Hash: a token's A1111 options (`/sdapi/v1/options`), such as its chosen checkpoint."""
    return f"{PREFIX}:sdopt:{owner}"


def image_current(owner: str) -> str:
    """String: the id of a token's latest image job, for `/sdapi/v1/progress` and `/sdapi/v1/interrupt`."""
    return f"{PREFIX}:sdcur:{owner}"


def image_file(file_id: str) -> str:
    """String: one generated PNG, served at /v1/images/files/<id>.png until it expires (OpenAI's `url` answers)."""
    return f"{PREFIX}:img:{file_id}"


def lua_function(name: str, key: Callable[..., str], *params: str) -> str:
    """The Lua source of `local function <name>(<params>)` returning the name `key` (a function of this module)
    gives its arguments: a script that finds a job or a token in Redis builds its keys with these, so that no
    key name is spelled a second time in Lua."""
    marks = [f"\x00{i}\x00" for i in range(len(params))]
    pieces = []
    for i, part in enumerate(key(*marks).split("\x00")):
        if i % 2:
            pieces.append(params[int(part)])
        elif part:
            assert "'" not in part and "\\" not in part, part
            pieces.append(f"'{part}'")
    return f"local function {name}({', '.join(params)}) return {' .. '.join(pieces)} end\n"
