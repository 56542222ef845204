"""The shipped deployment files, checked with real tools: the compose files against the Compose
Specification's schema (check-jsonschema), the Dockerfiles with hadolint; .env.example explains every setting."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from graycat.config import Settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(BIN))
    assert found, f"{name} is missing: pip install -e '.[test]'"
    return found


def test_compose_files_follow_the_compose_specification() -> None:
    files = [str(DEPLOY / "docker-compose.yml"), str(DEPLOY / "docker-compose.worker.yml")]
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", sorted(p.name for p in (DEPLOY / "docker").glob("*.Dockerfile")))
def test_dockerfile_passes_hadolint(dockerfile: str) -> None:
    result = subprocess.run(
        [tool("hadolint"), "--no-color", str(DEPLOY / "docker" / dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_env_example_explains_every_setting() -> None:
    text = (DEPLOY / ".env.example").read_text()
    named = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    settings = {str(field.validation_alias) for field in Settings.model_fields.values()}
    assert settings <= named, f"missing from deploy/.env.example: {sorted(settings - named)}"
    assert {"REDIS_PASS", "API_TOKENS", "METRICS_TOKEN", "GRAFANA_ADMIN_PASSWORD"} <= named


def test_compose_redis_caps_memory_without_evicting_queue_keys() -> None:
    """A token that fills Redis gets errors; no job, event stream or session of another disappears."""
    command = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]["redis"]["command"]
    assert re.search(r"--maxmemory \S+", command) and "--maxmemory-policy noeviction" in command, command
