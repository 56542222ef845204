"""Configuration: the original deployment's names, and clear failures that name the setting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from graycat.config import ConfigError, load_settings


def test_tokens_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKENS", " a1, b2 ,,c3")
    assert load_settings().api_tokens == ["a1", "b2", "c3"]


def test_redis_url_from_host_port_and_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("REDIS_HOST", "queue.example")
    monkeypatch.setenv("REDIS_PORT", "6380")
    monkeypatch.setenv("REDIS_PASS", "p@ss/word")
    assert load_settings().resolved_redis_url() == "redis://:p%40ss%2Fword@queue.example:6380/0"


def test_redis_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "rediss://remote:6390/1")
    monkeypatch.setenv("REDIS_HOST", "ignored")
    assert load_settings().resolved_redis_url() == "rediss://remote:6390/1"


@pytest.mark.parametrize(
    ("name", "value"),
    [("REDIS_PORT", "not-a-port"), ("GPU_LAYERS", "-5"), ("REDIS_URL", "http://x"), ("LOG_LEVEL", "loud")],
)
def test_invalid_setting_is_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()


def test_cli_refuses_invalid_configuration_at_start() -> None:
    env = {"REDIS_PORT": "seventy", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "graycat", "api"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "REDIS_PORT" in proc.stderr


def test_deadlines_per_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUE_TIMEOUT", "100")
    monkeypatch.setenv("QUEUE_TIMEOUTS", "sd=600, llm=30")
    monkeypatch.setenv("JOB_TIMEOUTS", "sd=1800")
    settings = load_settings()
    assert settings.queue_timeout_for("llm") == 30 and settings.queue_timeout_for("other") == 100
    assert settings.job_timeout_for("sd") == 1800 and settings.job_timeout_for("llm") == settings.job_timeout
    assert settings.record_ttl() == 600 + 1800 + settings.result_ttl
    monkeypatch.setenv("QUEUE_TIMEOUTS", "llm")
    with pytest.raises(ConfigError, match="QUEUE_TIMEOUTS"):
        load_settings()


def test_settings_come_from_a_dotenv_file_and_the_environment_wins(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("API_TOKENS=from-file\nLLM_SLOTS=7\nREDIS_HOST=file-host\n")
    monkeypatch.chdir(tmp_path)
    for name in ("API_TOKENS", "LLM_SLOTS", "REDIS_HOST", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LLM_SLOTS", "3")
    settings = load_settings()
    assert settings.api_tokens == ["from-file"] and settings.slots == 3
    assert settings.resolved_redis_url().startswith("redis://file-host:")


def test_more_models_and_chat_templates_per_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAYCAT_MODELS", "beta=/models/b.gguf, gamma=/models/c.gguf")
    monkeypatch.setenv("LLM_CHAT_TEMPLATES", "gemma, beta=/templates/beta.jinja")
    settings = load_settings()
    assert settings.extra_models == {"beta": "/models/b.gguf", "gamma": "/models/c.gguf"}
    assert settings.chat_template_for("beta") == "/templates/beta.jinja"
    assert settings.chat_template_for("gamma") == "gemma"  # the bare value is every other model's
    monkeypatch.setenv("GRAYCAT_MODELS", "=/models/b.gguf")
    with pytest.raises(ConfigError, match="GRAYCAT_MODELS"):
        load_settings()


def test_setting_errors_read_without_the_library_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUE_TIMEOUTS", "sd")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "QUEUE_TIMEOUTS: expected kind=seconds pairs" in str(error.value) and "Value error" not in str(error.value)


def test_rate_limits_are_off_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RATE_LIMIT_RPM", "RATE_LIMIT_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(_env_file=None)
    assert (settings.rate_limit_rpm, settings.rate_limit_concurrency) == (0, 0)
    monkeypatch.setenv("RATE_LIMIT_RPM", "60")
    assert load_settings(_env_file=None).rate_limit_rpm == 60
