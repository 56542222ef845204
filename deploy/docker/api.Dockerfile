# The Graycat HTTP API (stateless; run as many replicas as you like). Build from the repository root:
#   docker build -f deploy/docker/api.Dockerfile -t graycat-api .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY graycat ./graycat
RUN pip install . && useradd --system --uid 10001 --home-dir /app graycat
USER 10001

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
CMD ["graycat", "api", "--host", "0.0.0.0", "--port", "8000"]
