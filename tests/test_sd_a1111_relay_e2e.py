"""`graycat worker sd --a1111-url`: image jobs relayed to an Automatic1111 WebUI. A1111 itself cannot run here, so
a small stand-in serves the part of its API the relay uses; the api and the worker are the real processes."""

from __future__ import annotations

import base64
import json
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image

from tests.conftest import Cluster, free_port, wait_until
from tests.test_sd_e2e import _b64, _bearer, _png

pytestmark = pytest.mark.e2e

USER, PASSWORD = "webui", "s3cret"
MODEL = {
    "title": "fake-model.safetensors [0123456789]",
    "model_name": "fake-model",
    "hash": "0123456789",
    "sha256": "0123456789" + "ab" * 27,
    "filename": "/webui/models/Stable-diffusion/fake-model.safetensors",
    "config": None,
}
PREVIEW = _b64(Image.new("RGB", (8, 8), (10, 200, 10)))


class FakeWebUI:
    """The WebUI's API as the relay uses it: model lists, refresh-*, txt2img / img2img (one generation at a
    time, `step_s` per sampling step), progress with a preview, interrupt and skip between steps."""

    def __init__(self, step_s: float = 0.02) -> None:
        self.step_s = step_s
        self.models = [MODEL]
        self.calls: list[tuple[str, str, Any]] = []  # (method, path, JSON body)
        self.auth: set[str] = set()  # Authorization headers seen
        self.state = {"job_no": 0, "job_count": 0, "sampling_step": 0, "sampling_steps": 0}
        self.interrupted = threading.Event()
        self.skipped = threading.Event()
        self.lock = threading.Lock()  # one generation at a time, as the WebUI's queue lock
        self.broken = False  # refresh-checkpoints fails
        webui = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                url = urlsplit(self.path)
                webui.auth.add(self.headers.get("Authorization", ""))
                webui.calls.append((method, url.path, body))
                status, answer = webui.answer(method, url.path, parse_qs(url.query), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{USER}:{PASSWORD}@127.0.0.1:{self.server.server_port}"

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        routes: dict[tuple[str, str], Any] = {
            ("GET", "/sdapi/v1/sd-models"): lambda: self.models,
            ("GET", "/sdapi/v1/loras"): lambda: [
                {
                    "name": "detail-tweaker",
                    "alias": "detail-tweaker",
                    "path": "/webui/models/Lora/detail-tweaker.safetensors",
                    "metadata": {},
                }
            ],
            ("GET", "/sdapi/v1/sd-vae"): lambda: [{"model_name": "vae-ft-mse.safetensors", "filename": "/x"}],
            ("GET", "/controlnet/model_list"): lambda: {"model_list": ["control_canny [a1b2c3d4]"]},
            ("GET", "/sdapi/v1/progress"): lambda: self.progress(query),
            ("POST", "/sdapi/v1/interrupt"): lambda: self.interrupted.set() or {},
            ("POST", "/sdapi/v1/skip"): lambda: self.skipped.set(),
            ("POST", "/sdapi/v1/txt2img"): lambda: self.generate(body),
            ("POST", "/sdapi/v1/img2img"): lambda: self.generate(body),
            **{("POST", f"/sdapi/v1/refresh-{what}"): lambda: None for what in ("checkpoints", "loras", "vae")},
        }
        if (method, path) not in routes:
            return 404, {"detail": "Not Found"}
        if self.broken and path == "/sdapi/v1/refresh-checkpoints":
            return 500, {"error": "OSError", "detail": "disk gone"}
        return 200, routes[(method, path)]()

    def progress(self, query: dict[str, list[str]]) -> dict[str, Any]:
        state = dict(self.state)
        running = state["sampling_step"] > 0
        wanted = query.get("skip_current_image", ["false"])[0] == "false"
        return {
            "progress": 0.5 if running else 0,
            "eta_relative": 1.0,
            "state": state,
            "current_image": PREVIEW if running and wanted else None,
            "textinfo": None,
        }

    def generate(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.interrupted.clear()
            self.skipped.clear()
            images, seeds = [], []
            self.state.update(job_count=body["n_iter"], sampling_steps=body["steps"])
            for n in range(body["n_iter"]):
                self.state.update(job_no=n)
                for step in range(1, body["steps"] + 1):
                    if self.interrupted.is_set() or self.skipped.is_set():
                        break
                    time.sleep(self.step_s)
                    self.state.update(sampling_step=step)
                self.skipped.clear()
                for i in range(body["batch_size"]):  # A1111 answers with what it has, even when interrupted
                    seed = body["seed"] + n * body["batch_size"] + i
                    seeds.append(seed)
                    images.append(_b64(Image.new("RGB", (body["width"], body["height"]), (seed % 256, 0, 0))))
                if self.interrupted.is_set():
                    break
            self.state.update(job_no=0, job_count=0, sampling_step=0, sampling_steps=0)
        info = {
            "seed": body["seed"],
            "all_seeds": seeds,
            "infotexts": [f"Seed: {s}" for s in seeds],
            "sd_model_name": body["override_settings"]["sd_model_checkpoint"],
        }
        return {"images": images, "parameters": body, "info": json.dumps(info)}

    def last(self, path: str) -> Any:
        return next(body for method, p, body in reversed(self.calls) if p == path)


@pytest.fixture(scope="module")
def webui() -> Iterator[FakeWebUI]:
    server = FakeWebUI()
    yield server
    server.server.shutdown()


@pytest.fixture(scope="module")
def sd(cluster: Cluster, webui: FakeWebUI) -> Iterator[str]:
    """An api and an SD worker relaying to the stand-in WebUI; the api's URL."""
    worker = cluster.spawn("sd-relay", ["worker", "sd", "--a1111-url", webui.url])
    _, base = cluster.api()
    wait_until(lambda: Cluster.ready(worker), 60, "graycat worker sd --a1111-url")
    yield base
    worker.stop()


def test_the_webuis_models_are_served_with_its_credentials(sd: str, webui: FakeWebUI) -> None:
    with _bearer(sd) as http:
        assert http.get("/sdapi/v1/sd-models").json() == [{**MODEL, "loaded": False}]  # the WebUI's, not ours
        assert http.get("/sdapi/v1/loras").json()[0]["name"] == "detail-tweaker"
        assert http.get("/sdapi/v1/sd-vae").json()[0]["model_name"] == "vae-ft-mse.safetensors"
    assert webui.auth == {"Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


def test_txt2img_and_img2img_are_relayed_with_their_parameters(sd: str, webui: FakeWebUI) -> None:
    body = {
        "prompt": "a cat <lora:detail-tweaker:0.5>",
        "negative_prompt": "dog",
        "seed": 7,
        "steps": 4,
        "sampler_name": "DPM++ 2M Karras",
        "cfg_scale": 5,
        "width": 64,
        "height": 48,
        "batch_size": 2,
        "override_settings": {"sd_model_checkpoint": "fake-model", "sd_vae": "vae-ft-mse"},
    }
    with _bearer(sd) as http:
        resp = http.post("/sdapi/v1/txt2img", json=body)
        assert resp.status_code == 200, resp.text
        sent = webui.last("/sdapi/v1/txt2img")
        assert {
            k: sent[k]
            for k in (
                "prompt",
                "negative_prompt",
                "seed",
                "steps",
                "sampler_name",
                "scheduler",
                "cfg_scale",
                "width",
                "height",
                "batch_size",
                "n_iter",
            )
        } == {
            "prompt": body["prompt"],
            "negative_prompt": "dog",
            "seed": 7,
            "steps": 4,
            "sampler_name": "DPM++ 2M",
            "scheduler": "karras",
            "cfg_scale": 5,
            "width": 64,
            "height": 48,
            "batch_size": 2,
            "n_iter": 1,
        }
        assert sent["override_settings"]["sd_model_checkpoint"] == MODEL["title"]
        assert sent["override_settings"]["sd_vae"] == "vae-ft-mse.safetensors"
        answer = resp.json()
        assert json.loads(answer["info"])["all_seeds"] == [7, 8] and answer["parameters"]["steps"] == 4
        assert "refiner_checkpoint" not in sent
        assert [_png(i).getpixel((0, 0)) for i in answer["images"]] == [(7, 0, 0), (8, 0, 0)]

        mask = Image.new("L", (64, 64), 0)
        control = {"enabled": True, "module": "canny", "model": "control_canny", "image": _b64(mask), "threshold_a": 50}
        edit = http.post(
            "/sdapi/v1/img2img",
            json={
                "prompt": "a cat",
                "seed": 3,
                "steps": 2,
                "width": 64,
                "height": 64,
                "denoising_strength": 0.4,
                "init_images": [_b64(Image.new("RGB", (64, 64)))],
                "mask": _b64(mask),
                "mask_blur": 2,
                "alwayson_scripts": {"controlnet": {"args": [control]}},
            },
        )
        assert edit.status_code == 200, edit.text
    sent = webui.last("/sdapi/v1/img2img")
    assert sent["denoising_strength"] == 0.4 and sent["mask_blur"] == 2 and len(sent["init_images"]) == 1
    assert _png(sent["init_images"][0]).size == (64, 64) and _png(sent["mask"]).mode == "L"
    [unit] = sent["alwayson_scripts"]["controlnet"]["args"]
    assert unit["model"] == "control_canny [a1b2c3d4]" and unit["weight"] == 1.0  # the WebUI's own name
    assert (unit["module"], unit["threshold_a"], unit["threshold_b"]) == ("canny", 50, 200)  # its preprocessor

    made = len(answer["images"]) + len(edit.json()["images"])  # counted for the images dashboard

    def counted() -> float:
        lines = httpx.get(sd + "/metrics", timeout=5).text.splitlines()
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("graycat_worker_images_total{"))

    wait_until(lambda: counted() >= made, 10, "the relay's heartbeat to count its images")
    assert counted() == made == 3


def test_the_tokens_output_options_and_sd_upscale_reach_the_webui(sd: str, webui: FakeWebUI) -> None:
    with _bearer(sd) as http:
        assert (
            http.post(
                "/sdapi/v1/options", json={"samples_format": "webp", "eta_noise_seed_delta": 31337, "jpeg_quality": 70}
            ).status_code
            == 200
        )
        try:
            resp = http.post(
                "/sdapi/v1/img2img",
                json={
                    "prompt": "a cat",
                    "seed": 3,
                    "steps": 2,
                    "width": 64,
                    "height": 64,
                    "init_images": [_b64(Image.new("RGB", (64, 64)))],
                    "script_name": "SD upscale",
                    "script_args": ["", 16, "Nearest", 2],
                },
            )
            assert resp.status_code == 200, resp.text
        finally:
            http.post(
                "/sdapi/v1/options", json={"samples_format": "png", "eta_noise_seed_delta": 0, "jpeg_quality": 80}
            )
    sent = webui.last("/sdapi/v1/img2img")
    assert (sent["script_name"], sent["script_args"]) == ("SD upscale", ["", 16, 2, 2.0])  # Nearest's index
    settings = sent["override_settings"]
    assert (settings["samples_format"], settings["eta_noise_seed_delta"], settings["jpeg_quality"]) == (
        "webp",
        31337,
        70,
    )


def test_a_refiner_is_left_to_the_webui(sd: str, webui: FakeWebUI) -> None:
    body = {"prompt": "a cat", "steps": 4, "width": 64, "height": 64, "refiner_checkpoint": "fake-model"}
    with _bearer(sd) as http:
        resp = http.post("/sdapi/v1/txt2img", json={**body, "refiner_switch_at": 0.6})
    assert resp.status_code == 200, resp.text
    sent = webui.last("/sdapi/v1/txt2img")
    assert (sent["refiner_checkpoint"], sent["refiner_switch_at"]) == ("fake-model", 0.6)  # the WebUI judges it


def test_progress_and_previews_come_from_the_webui(sd: str, webui: FakeWebUI) -> None:
    body = {"prompt": "slow", "seed": 1, "steps": 40, "width": 64, "height": 64, "n_iter": 2}
    with _bearer(sd) as http, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(http.post, "/sdapi/v1/txt2img", json=body)
        seen: list[dict[str, Any]] = []

        def second_round() -> bool:
            seen.append(http.get("/sdapi/v1/progress").json())
            return seen[-1]["state"]["job_no"] == 1 and seen[-1]["state"]["sampling_step"] >= 2

        wait_until(second_round, 30, "the second round's progress")
        assert seen[-1]["state"]["job_count"] == 2 and seen[-1]["state"]["sampling_steps"] == 40
        assert seen[-1]["progress"] > 0.5 and seen[-1]["current_image"] == PREVIEW
        assert pending.result(30).status_code == 200
    steps = [p["state"]["sampling_step"] + 100 * p["state"]["job_no"] for p in seen if p["state"]["sampling_steps"]]
    assert len(set(steps)) >= 3 and steps == sorted(steps)


def test_interrupt_and_skip_reach_the_webui(sd: str, webui: FakeWebUI) -> None:
    body = {"prompt": "slow", "seed": 1, "steps": 100, "width": 64, "height": 64, "n_iter": 2}
    with _bearer(sd) as http, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(http.post, "/sdapi/v1/txt2img", json=body)
        wait_until(lambda: http.get("/sdapi/v1/progress").json()["state"]["sampling_step"] >= 2, 30, "the job")
        assert http.post("/sdapi/v1/skip").json() is None
        wait_until(lambda: http.get("/sdapi/v1/progress").json()["state"]["job_no"] == 1, 10, "the second round")
        assert ("POST", "/sdapi/v1/skip", None) in webui.calls
        assert http.post("/sdapi/v1/interrupt").json() == {}
        resp = pending.result(30)
        assert resp.status_code == 499 and webui.interrupted.is_set()
        assert ("POST", "/sdapi/v1/interrupt", None) in webui.calls
        after = http.post("/sdapi/v1/txt2img", json={**body, "steps": 2, "n_iter": 1})  # the worker is free
        assert after.status_code == 200 and len(after.json()["images"]) == 1


def test_refresh_reads_the_webuis_lists_again(sd: str, webui: FakeWebUI) -> None:
    other = {**MODEL, "title": "other.safetensors [9876543210]", "model_name": "other", "hash": "9876543210"}
    webui.models = [MODEL, other]
    with _bearer(sd) as http:
        webui.broken = True
        failed = http.post("/sdapi/v1/refresh-checkpoints")
        webui.broken = False
        assert failed.status_code == 502 and "disk gone" in failed.json()["detail"], failed.text
        assert [m["model_name"] for m in http.get("/sdapi/v1/sd-models").json()] == ["fake-model"]
        assert http.post("/sdapi/v1/refresh-checkpoints").json() is None
        assert {p for m, p, _ in webui.calls if m == "POST" and "refresh" in p} == {
            "/sdapi/v1/refresh-checkpoints",
            "/sdapi/v1/refresh-loras",
            "/sdapi/v1/refresh-vae",
        }
        assert [m["model_name"] for m in http.get("/sdapi/v1/sd-models").json()] == ["fake-model", "other"]
        resp = http.post(
            "/sdapi/v1/txt2img",
            json={
                "prompt": "x",
                "steps": 2,
                "width": 64,
                "height": 64,
                "override_settings": {"sd_model_checkpoint": "other"},
            },
        )
        assert resp.status_code == 200, resp.text
    assert webui.last("/sdapi/v1/txt2img")["override_settings"]["sd_model_checkpoint"] == other["title"]


def test_an_unreachable_webui_stops_the_worker_with_a_clear_message(cluster: Cluster) -> None:
    worker = cluster.spawn("sd-relay", ["worker", "sd", "--a1111-url", f"http://127.0.0.1:{free_port()}"])
    assert worker.proc.wait(30) == 2
    assert "cannot reach the A1111 WebUI" in worker.output() and "Traceback" not in worker.output()


def test_graycat_up_relays_to_the_webui_of_sd_a1111_url(tmp_path: Path, webui: FakeWebUI) -> None:
    from tests.test_standalone_e2e import _up

    proc, base, _ = _up(tmp_path, API_TOKENS="mine", SD_A1111_URL=webui.url)
    try:

        def listed() -> bool:
            return {**MODEL, "loaded": False} in httpx.get(
                base + "/sdapi/v1/sd-models", auth=("u", "mine"), timeout=5
            ).json()

        wait_until(listed, 60, "the relaying SD worker of graycat up")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
