"""Which API a path belongs to, by its prefix: the one table the error shapes and the metrics read."""

_PREFIXES = (
    ("/v1/messages", "anthropic"),
    ("/v1/", "openai"),
    ("/jobs", "jobs"),
    ("/sdapi/", "a1111"),
    ("/api/", "ollama"),
)


def path_dialect(path: str) -> str | None:
    """anthropic, openai, jobs, a1111 or ollama; None for llama.cpp's routes and the gateway's own."""
    for prefix, dialect in _PREFIXES:
        if path.startswith(prefix):
            return dialect
    return None
