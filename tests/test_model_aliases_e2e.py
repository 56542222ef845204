"""MODEL_ALIASES: the names stock clients hard-code reach a served model; `*` takes any name."""

from __future__ import annotations

import httpx
import openai
import pytest

from graycat.config import load_settings
from tests.conftest import MODEL, TOKEN, Cluster, Gateway

pytestmark = pytest.mark.e2e


def test_aliases_setting_is_parsed() -> None:
    settings = load_settings(MODEL_ALIASES="gpt-4o-mini=default, text-embedding-3-small=nomic,*=default")
    assert settings.model_aliases == {"gpt-4o-mini": "default", "text-embedding-3-small": "nomic", "*": "default"}


def test_named_aliases_and_unknown_names(cluster: Cluster, gateway: Gateway) -> None:
    _, base = cluster.api(MODEL_ALIASES=f"gpt-4o-mini=default,gpt-3.5-turbo-instruct={MODEL}")
    sdk = openai.OpenAI(base_url=base + "/v1", api_key=TOKEN, max_retries=0, timeout=60)
    chat = sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], max_tokens=3)
    assert chat.choices[0].message.content is not None
    assert sdk.completions.create(model="gpt-3.5-turbo-instruct", prompt="The sky is", max_tokens=3).choices
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}], max_tokens=3)
    assert MODEL in str(missing.value)


def test_star_alias_takes_any_name(cluster: Cluster, gateway: Gateway) -> None:
    _, base = cluster.api(MODEL_ALIASES="*=default")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    message = {"model": "claude-sonnet-4-5", "max_tokens": 3, "messages": [{"role": "user", "content": "Hi"}]}
    resp = httpx.post(base + "/v1/messages", json=message, headers=headers, timeout=60)
    assert resp.status_code == 200, resp.text
    resp = httpx.post(
        base + "/completion", json={"model": "anything", "prompt": "Hi", "n_predict": 2}, headers=headers, timeout=60
    )
    assert resp.status_code == 200, resp.text
