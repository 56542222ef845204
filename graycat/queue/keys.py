"""Every Redis key and channel name the system uses, in one place."""

PREFIX = "gc"
GROUP = "workers"  # the consumer group of every pool stream
CANCEL_CHANNEL = f"{PREFIX}:cancel"  # pub/sub: job ids to cancel
WORKERS = f"{PREFIX}:workers"  # zset: worker id -> last heartbeat (unix time)
WORKER_TTL_S = 10.0  # a worker silent this long counts as gone (its heartbeat record expires with it)
MODELS = f"{PREFIX}:models"  # hash: model name -> JSON model info announced by workers
DEAD = f"{PREFIX}:dead"  # stream: jobs that failed past the delivery cap, kept for debugging


def pool(kind: str, model: str) -> str:
    """Stream of waiting jobs for one (kind, model) pool."""
    return f"{PREFIX}:pool:{kind}:{model}"


POOL_PATTERN = f"{PREFIX}:pool:*"


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
    build this name too."""
    return f"{PREFIX}:stats:{kind}:{model}"


def pool_minute(kind: str, model: str, minute: int) -> str:
    """Counter of the jobs a pool completed in one minute (unix time // 60), kept 25 hours."""
    return f"{PREFIX}:rate:{kind}:{model}:{minute}"


def idempotency(owner: str, key: str) -> str:
    """String: the job id a token's Idempotency-Key created."""
    return f"{PREFIX}:idem:{owner}:{key}"


def waiting_of(owner: str) -> str:
    """Sorted set: the jobs a token has waiting (job id -> enqueue time); scripts build this name too."""
    return f"{PREFIX}:waiting:{owner}"
