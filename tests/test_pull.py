"""`graycat pull | models | rm` against a local Hub holding the real SmolLM2 GGUF: pull by tag with progress, a
dropped connection resumed, an interrupted pull resumed by the next run, a corrupted byte refused, and each bad
reference answered with a clear message."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from graycat.config import load_settings
from graycat.store.pull import pull
from graycat.store.refs import HubRef, UrlRef, parse, quant_of
from graycat.store.remote import PullError
from graycat.workers.engines.llama_server import DEFAULT_MODEL_FILE, default_model_path
from tests.conftest import wait_until
from tests.fake_hub import GATED_REPO, GATED_TOKEN, SMOLLM_REPO, FakeHub, HubFile, smollm_hub

REPO = SMOLLM_REPO
NAME = Path(DEFAULT_MODEL_FILE).stem  # SmolLM2-135M-Instruct.Q4_1
REF = f"hf:{REPO}:Q4_1"


@pytest.fixture(scope="module")
def model() -> HubFile:
    return HubFile(default_model_path().read_bytes())


@pytest.fixture(scope="module")
def hub(model: HubFile) -> Iterator[FakeHub]:
    served = smollm_hub(model, DEFAULT_MODEL_FILE)
    yield served
    served.close()


@pytest.fixture
def faults(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    hub.faults.__init__()  # type: ignore[misc]
    yield hub
    hub.faults.__init__()  # type: ignore[misc]


def graycat(models: Path, hub: FakeHub, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HF_ENDPOINT=hub.url, GRAYCAT_MODELS_DIR=str(models), HF_HUB_DISABLE_TELEMETRY="1")
    return subprocess.run(
        [sys.executable, "-m", "graycat", *args], env=env, capture_output=True, text=True, timeout=120
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pull_by_tag_shows_progress_then_lists_and_removes(faults: FakeHub, model: HubFile, tmp_path: Path) -> None:
    faults.faults.seconds_per_mb = 0.02  # about 2 s: progress lines are drawn on the way
    done = graycat(tmp_path, faults, "pull", REF)
    assert done.returncode == 0, done.stderr
    path = tmp_path / DEFAULT_MODEL_FILE
    assert sha256(path) == model.sha256
    assert f"pulling {REF}" in done.stderr and "MB / 98.4 MB" in done.stderr and "MB/s" in done.stderr
    assert "100%" in done.stderr and f"pulled {NAME}" in done.stdout
    assert not list((tmp_path / ".partial").glob("*.part"))

    again = graycat(tmp_path, faults, "pull", REF)  # already there: nothing downloaded
    assert again.returncode == 0 and len(faults.faults.ranges) == 1

    listed = graycat(tmp_path, faults, "models")
    row = next(line for line in listed.stdout.splitlines() if line.startswith(NAME))
    assert row.split()[1:5] == ["llama", "Q4_1", "98.4", "MB"] and REF in row

    assert graycat(tmp_path, faults, "rm", NAME).returncode == 0
    assert not path.exists() and NAME not in graycat(tmp_path, faults, "models").stdout
    missing = graycat(tmp_path, faults, "rm", NAME)
    assert missing.returncode == 1 and "no model" in missing.stderr


def test_a_dropped_connection_is_resumed(faults: FakeHub, model: HubFile, tmp_path: Path) -> None:
    faults.faults.drop_after = 30_000_000
    path = pull(f"hf:{REPO}/{DEFAULT_MODEL_FILE}", tmp_path)
    assert sha256(path) == model.sha256
    first, resumed = faults.faults.ranges
    assert first is None and resumed is not None and int(resumed.removeprefix("bytes=").rstrip("-")) > 0


def test_an_interrupted_pull_resumes_where_it_stopped(faults: FakeHub, model: HubFile, tmp_path: Path) -> None:
    faults.faults.drop_after, faults.faults.refuse_after_drop = 40_000_000, 100
    with pytest.raises(PullError) as failure:
        pull(REF, tmp_path)
    failed = str(failure.value)
    assert "kept in" in failed and "run the pull again to resume" in failed
    partial = next((tmp_path / ".partial").glob("*.part"))
    kept = partial.stat().st_size
    assert kept > 0 and not (tmp_path / DEFAULT_MODEL_FILE).exists()

    faults.faults.refuse = 0
    path = pull(REF, tmp_path)
    assert sha256(path) == model.sha256 and faults.faults.ranges[-1] == f"bytes={kept}-"
    assert not partial.exists()


def test_ctrl_c_keeps_what_was_received_for_the_next_run(faults: FakeHub, model: HubFile, tmp_path: Path) -> None:
    faults.faults.seconds_per_mb = 0.1  # about 10 s
    env = dict(os.environ, HF_ENDPOINT=faults.url, GRAYCAT_MODELS_DIR=str(tmp_path))
    pulling = subprocess.Popen(
        [sys.executable, "-m", "graycat", "pull", REF], env=env, stderr=subprocess.PIPE, text=True
    )
    wait_until(
        lambda: any(p.stat().st_size > 10_000_000 for p in (tmp_path / ".partial").glob("*.part")), 30, "10 MB received"
    )
    pulling.send_signal(signal.SIGINT)
    _, err = pulling.communicate(timeout=30)
    assert pulling.returncode == 130 and "interrupted; the" in err and "run the pull again to resume" in err, err
    kept = next((tmp_path / ".partial").glob("*.part")).stat().st_size
    assert kept > 10_000_000 and not (tmp_path / DEFAULT_MODEL_FILE).exists()
    listed = graycat(tmp_path, faults, "models").stdout
    assert f"unfinished: {DEFAULT_MODEL_FILE} ({kept / 1e6:.1f} MB received" in listed and "no models in" in listed

    faults.faults.seconds_per_mb = 0
    assert graycat(tmp_path, faults, "pull", REF).returncode == 0
    assert sha256(tmp_path / DEFAULT_MODEL_FILE) == model.sha256 and faults.faults.ranges[-1] == f"bytes={kept}-"


def test_a_corrupted_byte_is_refused_and_nothing_is_left(faults: FakeHub, tmp_path: Path) -> None:
    faults.faults.corrupt_at = 1_234_567
    done = graycat(tmp_path, faults, "pull", REF)
    assert done.returncode == 1 and "checksum mismatch" in done.stderr, done.stderr
    assert not (tmp_path / DEFAULT_MODEL_FILE).exists() and not list((tmp_path / ".partial").glob("*.part"))


def test_a_full_disk_midway_is_said_and_nothing_put_in_place(faults: FakeHub, model: HubFile, tmp_path: Path) -> None:
    """The partial file is /dev/full (every write fails with ENOSPC, as on a disk that filled up during the
    download, after the free space was checked)."""
    partial = tmp_path / ".partial" / f"{DEFAULT_MODEL_FILE}.{model.sha256[:16]}.part"
    partial.parent.mkdir()
    partial.symlink_to("/dev/full")
    with pytest.raises(PullError) as failure:
        pull(REF, tmp_path)
    assert failure.value.status == 507 and f"the disk of {partial.parent} is full" in str(failure.value)
    assert "run the pull again to resume" in str(failure.value) and not (tmp_path / DEFAULT_MODEL_FILE).exists()


def test_a_url_with_its_checksum(faults: FakeHub, model: HubFile, tmp_path: Path) -> None:
    url = f"{faults.url}/files/{DEFAULT_MODEL_FILE}"
    wrong = "0" * 64
    with pytest.raises(PullError, match="checksum mismatch"):
        pull(url, tmp_path, sha256=wrong)
    assert sha256(pull(url, tmp_path, sha256=model.sha256)) == model.sha256


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("hf:graycat-test/missing", "no repository graycat-test/missing"),
        (
            f"hf:{REPO}/missing.gguf",
            "has no file missing.gguf; its GGUF files: Q8_0/SmolLM2-135M-Instruct.Q8_0-00001-of-00002.gguf (Q8_0), ",
        ),
        ("hf:graycat-test/no-gguf", "holds no GGUF file"),
        ("hf:graycat-test/image-model", "holds no GGUF file but image model weights: put it in the SD workers'"),
        (
            f"hf:{REPO}:Q4_K",
            "Q4_K matches 2 files of graycat-test/SmolLM2-135M-Instruct-GGUF: "
            "SmolLM2-135M-Instruct.Q4_K_M.gguf, SmolLM2-135M-Instruct.Q4_K_S.gguf",
        ),
        (f"hf:{REPO}:F32", "not enough disk space"),
        (f"hf:{REPO}:Q8_0", "is split into 2 files"),
        (f"hf:{REPO}:Q2_K", "no GGUF file of graycat-test/SmolLM2-135M-Instruct-GGUF has the quantisation Q2_K"),
        ("hf:just-a-name", "expected hf:OWNER/REPO"),
        ("./model.gguf", "is not a reference"),
    ],
)
def test_bad_references_are_explained(faults: FakeHub, tmp_path: Path, ref: str, message: str) -> None:
    with pytest.raises(PullError) as failure:
        pull(ref, tmp_path)
    assert message in str(failure.value)
    assert faults.faults.ranges == []  # nothing was downloaded


def test_a_gated_repository_needs_hf_token(faults: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no token stored by a login either
    with pytest.raises(PullError, match=f"no repository {GATED_REPO} on .*a private or gated one needs HF_TOKEN"):
        pull(f"hf:{GATED_REPO}:Q4_0", tmp_path)
    monkeypatch.setenv("HF_TOKEN", GATED_TOKEN)
    assert pull(f"hf:{GATED_REPO}:Q4_0", tmp_path).read_bytes() == faults.repos[GATED_REPO]["gated.Q4_0.gguf"].data


def test_an_unreachable_url_and_a_bad_checksum_argument(faults: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(PullError, match="no file at"):
        pull(f"{faults.url}/files/other.gguf", tmp_path)
    with pytest.raises(PullError, match="64 hexadecimal digits"):
        pull(REF, tmp_path, sha256="abc")


def test_references_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse("hf:o/r:q4_k_m") == HubRef("o/r", "q4_k_m") and parse("hf.co/o/r:latest") == HubRef("o/r")
    assert parse("hf:o/r/sub/m.Q8_0.gguf") == HubRef("o/r", None, "sub/m.Q8_0.gguf")
    assert parse("https://h/a/m%20x.gguf") == UrlRef("https://h/a/m%20x.gguf")
    assert parse("https://h/a/m%20x.gguf").file_name == "m x.gguf"  # type: ignore[union-attr]
    assert parse("./models/m.gguf") is None and parse("m") is None
    assert [quant_of(n) for n in ("a-Q4_K_M.gguf", "b.q8_0.gguf", "c-IQ4_XS.gguf", "d-f16.gguf", "e.gguf")] == [
        "Q4_K_M",
        "Q8_0",
        "IQ4_XS",
        "F16",
        None,
    ]
    monkeypatch.setenv("GRAYCAT_MODEL", "https://host/path/m.gguf")  # not a Path: its `//` stays
    monkeypatch.setenv("GRAYCAT_DATA_DIR", "/srv/graycat")
    settings = load_settings(extra_models="b=hf:o/r:Q4_0")
    assert settings.model == "https://host/path/m.gguf" and settings.extra_models == {"b": "hf:o/r:Q4_0"}
    assert settings.models_folder() == Path("/srv/graycat/models") and settings.served_model_name() == "m"


def test_gguf_metadata_is_read_from_the_head_of_the_file(tmp_path: Path) -> None:
    from graycat.store.gguf_meta import general

    meta = general(default_model_path())
    assert (meta["architecture"], meta["size_label"]) == ("llama", "135M")
    head = default_model_path().read_bytes()[:200]  # cut inside the metadata: what was read before the cut
    (tmp_path / "cut.gguf").write_bytes(head)
    (tmp_path / "text.gguf").write_bytes(b"not a model at all")
    assert general(tmp_path / "cut.gguf").get("architecture") == "llama" and general(tmp_path / "text.gguf") == {}


def test_the_models_served_at_start_keep_every_entry_written_at_once(tmp_path: Path) -> None:
    """Workers sharing a models folder remember and forget models at the same moment: none of their entries is
    lost (each change of `.served.json` is a read then a write)."""
    import threading

    from graycat.store import folder

    for n in range(16):
        (tmp_path / f"m{n}.gguf").write_bytes(b"GGUF")
    threads = [
        threading.Thread(target=folder.remember, args=(tmp_path, f"m{n}", tmp_path / f"m{n}.gguf")) for n in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(folder.served_at_start(tmp_path)) == {f"m{n}" for n in range(16)}


def test_a_copy_never_writes_over_a_name_taken_after_its_check(tmp_path: Path) -> None:
    """The name is taken once the link is made, whatever an earlier look found: here by a link to nowhere (which
    `exists()` does not see, as it did not see another worker's copy made just after it looked)."""
    from graycat.store import folder

    source = tmp_path / "model.gguf"
    source.write_bytes(b"GGUF")
    (tmp_path / "copy.gguf").symlink_to(tmp_path / "elsewhere.gguf")
    with pytest.raises(FileExistsError):
        folder.copy(folder.on_disk(source), "copy")
    assert not (tmp_path / "elsewhere.gguf").exists()
