"""`graycat pull --sd` against a local Hub holding tiny SD models: a single-file checkpoint, a diffusers pipeline
repository, a LoRA and a ControlNet land in SD_MODELS_DIR's A1111 folders, and a running SD worker lists them
(and draws with them) without a restart."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from graycat.store.remote import PullError
from graycat.store.sd import pull_sd
from tests.conftest import Cluster, wait_until
from tests.fake_hub import FakeHub, HubFile
from tests.test_sd_e2e import SMALL, _bearer
from tests.tiny_sd import build_controlnet, build_lora, build_pipeline, to_single_file

pytestmark = pytest.mark.e2e


def _files(root: Path) -> dict[str, HubFile]:
    return {p.relative_to(root).as_posix(): HubFile(p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    build = tmp_path_factory.mktemp("sd-hub")
    pipe = build_pipeline(build / "pipeline")
    to_single_file(pipe, build / "tiny-pulled.safetensors")
    build_controlnet(pipe, build / "controlnet")
    build_lora(pipe, build / "lora" / "pulled-lora.safetensors")  # last: it adds adapters to `pipe`
    single = HubFile((build / "tiny-pulled.safetensors").read_bytes())
    served = FakeHub(
        {
            "graycat-test/tiny-sd": {"tiny-pulled.safetensors": single, "README.md": HubFile(b"# tiny\n")},
            "graycat-test/tiny-sd-diffusers": _files(build / "pipeline") | {"README.md": HubFile(b"# tiny\n")},
            "graycat-test/tiny-lora": _files(build / "lora"),
            "graycat-test/tiny-controlnet": _files(build / "controlnet"),
            "graycat-test/two-files": {"a.safetensors": single, "b.ckpt": single},
            "files": {"tiny-url.safetensors": single},
        }
    )
    yield served
    served.close()


@pytest.fixture(scope="module")
def sd(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """An api and an SD worker on a folder holding one diffusers checkpoint: the api's URL and the folder."""
    root = tmp_path_factory.mktemp("sd-pull")
    build_pipeline(root / "models" / "Stable-diffusion" / "tiny")
    _, base = cluster.api(SD_MAX_SIZE="256")
    worker = cluster.sd_worker(root)
    yield base, root
    worker.stop()


def graycat_pull(cluster: Cluster, hub: FakeHub, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = cluster.env(HF_ENDPOINT=hub.url, SD_MODELS_DIR=str(root), HF_HUB_DISABLE_TELEMETRY="1")
    return subprocess.run(
        [sys.executable, "-m", "graycat", "pull", "--sd", *args], env=env, capture_output=True, text=True, timeout=180
    )


def test_pulled_image_models_are_served_without_a_restart(cluster: Cluster, hub: FakeHub, sd: tuple[str, Path]) -> None:
    base, root = sd
    with _bearer(base) as http:

        def names() -> list[str]:
            return [m["model_name"] for m in http.get("/sdapi/v1/sd-models").json()]

        assert names() == ["tiny"]
        done = graycat_pull(cluster, hub, root, "hf:graycat-test/tiny-sd")
        assert done.returncode == 0, done.stderr
        assert (root / "models" / "Stable-diffusion" / "tiny-pulled.safetensors").is_file()
        assert "running SD worker(s) read their models folder again" in done.stdout and "100%" in done.stderr
        assert names() == ["tiny", "tiny-pulled"]  # no refresh asked by hand, no restart

        folder = graycat_pull(cluster, hub, root, "hf:graycat-test/tiny-sd-diffusers")
        assert folder.returncode == 0, folder.stderr
        assert (root / "models" / "Stable-diffusion" / "tiny-sd-diffusers" / "unet" / "config.json").is_file()
        assert not (root / "models" / ".partial" / "checkpoint-tiny-sd-diffusers").exists()
        assert names() == ["tiny", "tiny-pulled", "tiny-sd-diffusers"]

        lora = graycat_pull(cluster, hub, root, "--kind", "lora", "hf:graycat-test/tiny-lora")
        assert lora.returncode == 0, lora.stderr
        wait_until(
            lambda: [x["name"] for x in http.get("/sdapi/v1/loras").json()] == ["pulled-lora"],
            5,
            "the LoRA listed (the api reuses what workers announced for up to 2 s)",
        )

        body = {"prompt": "a cat", "seed": 5, **SMALL}
        pulled = http.post(
            "/sdapi/v1/txt2img",
            json={
                **body,
                "prompt": "a cat <lora:pulled-lora:1>",
                "override_settings": {"sd_model_checkpoint": "tiny-pulled"},
            },
        )
        assert pulled.status_code == 200, pulled.text

    control = graycat_pull(cluster, hub, root, "--kind", "controlnet", "hf:graycat-test/tiny-controlnet")
    assert control.returncode == 0, control.stderr
    placed = root / "models" / "ControlNet" / "tiny-controlnet"
    assert (placed / "config.json").is_file() and (placed / "diffusion_pytorch_model.safetensors").is_file()


def test_a_url_into_the_vae_folder_and_bad_requests(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    path = pull_sd(f"{hub.url}/files/tiny-url.safetensors", tmp_path, "vae")
    assert path == tmp_path / "models" / "VAE" / "tiny-url.safetensors"
    for ref, kind, message in [  # each refused before anything is downloaded
        ("hf:graycat-test/two-files", "checkpoint", "holds 2 weights files (a.safetensors, b.ckpt); name one"),
        ("hf:graycat-test/tiny-sd:Q4_K_M", "checkpoint", "a tag chooses a GGUF quantisation"),
        ("hf:graycat-test/tiny-sd/README.md", "checkpoint", "README.md is no image model file"),
        ("hf:graycat-test/tiny-sd", "controlnet", "reads ControlNets as diffusers folders"),
        ("hf:graycat-test/missing", "lora", "no repository graycat-test/missing"),
        ("./x.safetensors", "checkpoint", "is not a reference"),
    ]:
        with pytest.raises(PullError, match=message.replace("(", r"\(").replace(")", r"\)")):
            pull_sd(ref, tmp_path, kind)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["VAE"]


def test_without_sd_models_dir_the_pull_says_what_to_set(hub: FakeHub, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SD_MODELS_DIR"} | {"HF_ENDPOINT": hub.url}
    done = subprocess.run(
        [sys.executable, "-m", "graycat", "pull", "--sd", "hf:graycat-test/tiny-sd"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "set SD_MODELS_DIR" in done.stderr
