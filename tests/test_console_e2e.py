"""The web console in a real headless Chromium against a live gateway and llama.cpp worker: sign-in (a wrong
token refused), the live overview moving while jobs run, a chat streamed token by token and stopped, a job
looked up, a token created and revoked, accessibility checks at laptop and phone widths, no console errors.

CONSOLE_SCREENSHOTS=<folder> saves a screenshot of each page at both widths there (docs/images/ has them)."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from graycat.jobs import Job
from graycat.queue import keys
from graycat.tokens import fingerprint
from tests.cdp import Browser
from tests.conftest import ADMIN, EMBED_MODEL, MODEL, TOKEN, Cluster, Gateway, wait_until
from tests.test_console_api_e2e import add_dead_letter
from tests.tiny_sd import build_models_folder

pytestmark = pytest.mark.e2e

# Checks run in the page: every form control labelled, every button and image named, text contrast at least
# 4.5:1 (3:1 for large text) against its background, ids unique. Returns what fails.
A11Y = """(() => {
  const failures = [];
  const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (!el.labels.length && !el.getAttribute("aria-label")) failures.push(`unlabelled ${el.tagName} #${el.id}`);
  }
  for (const el of document.querySelectorAll("button, a[href], [role=tab]")) {
    if (!(el.textContent.trim() || el.getAttribute("aria-label"))) failures.push(`unnamed ${el.tagName} #${el.id}`);
  }
  for (const el of document.querySelectorAll("img")) if (!el.hasAttribute("alt")) failures.push(`no alt: ${el.src}`);
  for (const el of document.querySelectorAll("canvas")) if (!el.getAttribute("aria-label")) failures.push(el.id);
  const ids = [...document.querySelectorAll("[id]")].map((el) => el.id);
  for (const id of new Set(ids)) if (ids.filter((x) => x === id).length > 1) failures.push(`duplicate id ${id}`);
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let n = el; n; n = n.parentElement) {
      const c = rgb(getComputedStyle(n).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !visible(el) || el.disabled || el.closest("[disabled]")) continue;
    const style = getComputedStyle(el);
    const fg = lum(rgb(style.color)), bg = lum(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    const what = `${el.tagName} "${el.textContent.trim().slice(0, 30)}"`;
    if (ratio < need) failures.push(`contrast ${ratio.toFixed(2)} < ${need}: ${what}`);
  }
  return failures;
})()"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    b = Browser(tmp_path_factory.mktemp("chromium"))
    yield b
    b.close()


def sign_in(browser: Browser, gateway: Gateway, token: str) -> None:
    """Open the console and sign in by keyboard: the token typed into its field, then Enter."""
    browser.open(gateway.base + "/")
    # once a sign-in with the tab's token, if any, has ended (it would store the token again)
    browser.wait("!document.getElementById('sign-in').hidden || !document.getElementById('nav').hidden")
    browser.js("sessionStorage.clear()")
    browser.open(gateway.base + "/")
    browser.wait("!document.getElementById('sign-in').hidden", what="the sign-in form")
    browser.js("document.getElementById('token').focus()")
    browser.type(token)
    browser.press("Enter", "Enter", 13)


def text_of(browser: Browser, selector: str) -> str:
    return str(browser.js(f"document.querySelector({selector!r})?.textContent ?? ''"))


def total(browser: Browser, label: str) -> str:
    return str(
        browser.js(
            f"[...document.querySelectorAll('#totals .total')].find((t) => "
            f"t.querySelector('span').textContent === {label!r})?.querySelector('b').textContent ?? ''"
        )
    )


def test_a_wrong_token_is_refused(browser: Browser, gateway: Gateway) -> None:
    sign_in(browser, gateway, "not-a-token")
    message = browser.wait("document.getElementById('sign-in-error').textContent", what="the refusal")
    assert message == "Token refused: invalid API token."
    assert browser.js("document.getElementById('nav').hidden && document.getElementById('page-overview').hidden")
    assert browser.js("sessionStorage.getItem('graycat.token')") is None
    assert all("401" in e for e in browser.errors), browser.errors  # the refused request, reported by Chromium
    browser.errors.clear()


def test_overview_shows_the_worker_and_counts_moving_while_jobs_run(
    browser: Browser, gateway: Gateway, cluster: Cluster
) -> None:
    sign_in(browser, gateway, TOKEN)
    browser.wait("!document.getElementById('page-overview').hidden", what="the overview")
    assert text_of(browser, "#who") == "token" and browser.js("document.querySelector('[data-page=admin]').hidden")
    assert browser.js("sessionStorage.getItem('graycat.token')") == TOKEN and TOKEN not in browser.js("location.href")
    browser.wait(
        f"[...document.querySelectorAll('.worker dd')].some((d) => d.textContent.includes({MODEL!r}))",
        what="the worker's card",
    )
    browser.wait("document.getElementById('live').textContent === 'live'")
    before = int(total(browser, "Completed").replace(",", ""))
    jobs = 8

    def run() -> None:
        with gateway.client() as client:
            for _ in range(jobs // 2):
                assert client.post("/completion", json={"prompt": "Tell a story", "n_predict": 48}).status_code == 200

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    busy_seen = False
    while any(t.is_alive() for t in threads):
        busy_seen |= total(browser, "Busy slots").split(" / ")[0] not in ("0", "")
        time.sleep(0.05)
    assert busy_seen, "the overview never showed a busy slot while jobs ran"
    wait_until(lambda: float(total(browser, "Tokens/s") or 0) > 0, 10, "the workers' tokens per second")
    wait_until(
        lambda: int(total(browser, "Completed").replace(",", "")) >= before + jobs,
        10,
        "the completed count to rise by the jobs run",
    )
    row = browser.js(
        f"[...document.querySelectorAll('#pools tbody tr')].map((r) => r.textContent)"
        f".find((t) => t.includes({MODEL!r}))"
    )
    assert row and row.startswith("text")
    assert re.search(r"\d[\d.]* m?s / \d[\d.]* m?s$", row), row  # the queue waits' p50 / p95
    assert browser.js("document.getElementById('chart-done').width > 0")
    r = redis.Redis.from_url(cluster.redis.url)  # a job waiting in a pool no worker serves: an alert fires
    job = Job(kind="llm", model="orphan-overview", endpoint="/completion", body=b"{}", stream=False)
    r.xadd(keys.pool("llm", "orphan-overview"), job.to_fields())  # type: ignore[arg-type]
    r.sadd(keys.POOLS, keys.pool("llm", "orphan-overview"))  # registered, as the api registers a queued job's pool
    try:
        alert = browser.wait(
            "[...document.querySelectorAll('#attention li')].map((li) => li.textContent)"
            ".find((t) => t.includes('orphan-overview'))",
            what="the alert",
        )
        assert alert == "critical No live worker serves llm/orphan-overview (1 waiting) (rule GraycatNoWorkerForModel)"
    finally:
        r.delete(keys.pool("llm", "orphan-overview"))
        r.srem(keys.POOLS, keys.pool("llm", "orphan-overview"))
    browser.wait(
        "!document.getElementById('attention').textContent.includes('orphan-overview')",
        what="the alert to end with its pool",
    )
    assert not browser.errors, browser.errors


def chat_text(browser: Browser) -> str:
    return str(browser.js("[...document.querySelectorAll('#chat-log li.assistant .text')].pop()?.textContent ?? ''"))


def send_chat(browser: Browser, message: str, max_tokens: int) -> None:
    browser.js(f"document.getElementById('chat-max').value = {max_tokens}")
    browser.js("document.getElementById('chat-input').focus()")
    browser.type(message)
    browser.press("Enter", "Enter", 13)


def test_a_chat_streams_token_by_token_and_can_be_stopped(browser: Browser, gateway: Gateway) -> None:
    sign_in(browser, gateway, TOKEN)
    browser.wait("!document.getElementById('page-overview').hidden", what="the overview")
    browser.js("location.hash = '#playground'")
    browser.wait(f"document.getElementById('chat-model').value === {MODEL!r}", what="the model picker")
    assert MODEL in text_of(browser, "#snippet") and "GRAYCAT_TOKEN" in text_of(browser, "#snippet")
    assert TOKEN not in text_of(browser, "#snippet")
    browser.js("document.getElementById('chat-temperature').value = '0'")  # greedy: the same answer each run
    send_chat(browser, "Write a short poem about the sea.", 40)
    lengths = set()
    while not browser.js(
        "document.getElementById('chat-go').disabled === false && !document.querySelector('#chat-log li[aria-busy]')"
    ):
        lengths.add(len(chat_text(browser)))
        time.sleep(0.01)
    assert len(lengths - {0}) >= 3, f"the answer did not appear piece by piece: {sorted(lengths)}"
    assert "chunks in" in text_of(browser, "#chat-status") and chat_text(browser).strip()

    with gateway.client() as client:

        def cancelled() -> int:
            pools = client.get("/queue/status").json()["pools"]
            return sum(p["cancelled"] for p in pools if p["model"] == MODEL)

        before = cancelled()
        send_chat(browser, "Write a long story about a dragon who learns to fly.", 400)  # greedy: 400 tokens
        browser.wait(
            "[...document.querySelectorAll('#chat-log li.assistant .text')].pop().textContent.length > 20",
            what=f"the long answer to start ({text_of(browser, '#chat-status')})",
        )
        browser.js("document.getElementById('chat-stop').click()")
        browser.wait("document.querySelector('#chat-log li.assistant:last-child').classList.contains('stopped')")
        assert text_of(browser, "#chat-status") == "Stopped: the server cancelled the job."
        stopped_at = len(chat_text(browser))
        wait_until(lambda: cancelled() > before, 10, "the stopped chat's job to be cancelled")
    time.sleep(0.5)
    assert len(chat_text(browser)) == stopped_at  # nothing more arrived
    assert not browser.errors, browser.errors


def test_a_chat_kept_by_the_server_sends_only_each_new_turn(browser: Browser, gateway: Gateway) -> None:
    sign_in(browser, gateway, TOKEN)
    browser.wait("!document.getElementById('page-overview').hidden", what="the overview")
    browser.js("location.hash = '#playground'")
    browser.wait(f"document.getElementById('chat-model').value === {MODEL!r}", what="the model picker")
    browser.js("document.getElementById('chat-session').click()")
    snippet = browser.wait(
        "document.getElementById('snippet').textContent.includes('X-Session-ID: ') && "
        "document.getElementById('snippet').textContent"
    )
    found = re.search(r"X-Session-ID: ([\w-]+)", snippet)
    assert found, snippet
    session = found.group(1)
    done = "!document.querySelector('#chat-log li[aria-busy]') && document.getElementById('chat-go').disabled === false"
    for turn in ("My name is Ada.", "What is my name?"):
        send_chat(browser, turn, 12)
        browser.wait(
            f"{done} && document.querySelectorAll('#chat-log li.assistant').length === "
            f"{1 if turn.startswith('My') else 2}",
            what=f"the answer to {turn!r}",
        )
        browser.wait(done)
    with gateway.client() as client:
        kept = client.get(f"/sessions/{session}").json()["messages"]
    assert [m["role"] for m in kept] == ["user", "assistant", "user", "assistant"]
    assert kept[0]["content"] == "My name is Ada." and kept[2]["content"] == "What is my name?"
    assert "My name is Ada." not in text_of(browser, "#snippet")  # the next turn sends only itself
    browser.js("document.getElementById('chat-clear').click()")  # a new conversation forgets the old one
    with gateway.client() as client:
        wait_until(lambda: client.get(f"/sessions/{session}").status_code == 404, 5, "the session to be forgotten")
    browser.js("document.getElementById('chat-session').click()")
    assert not browser.errors, browser.errors


def test_a_raw_completion_streams_and_embeddings_show_their_dimension(browser: Browser, embedder: Gateway) -> None:
    sign_in(browser, embedder, TOKEN)
    browser.wait("!document.getElementById('page-overview').hidden", what="the overview")
    browser.js("location.hash = '#playground'")
    browser.js("document.getElementById('tab-completion').click()")
    browser.wait(f"document.getElementById('completion-model').value === {MODEL!r}", what="the completion's model")
    snippet = text_of(browser, "#snippet")
    assert "/v1/completions" in snippet and '"prompt": "Once upon a time"' in snippet
    browser.js("document.getElementById('completion-temperature').value = '0'")
    browser.js("document.getElementById('completion-max').value = '24'")
    browser.js("document.getElementById('completion-go').click()")
    lengths = set()
    while browser.js("document.getElementById('completion-go').disabled"):
        lengths.add(len(text_of(browser, "#completion-out b")))
        time.sleep(0.01)
    assert "chunks in" in text_of(browser, "#completion-status"), text_of(browser, "#completion-status")
    assert len(lengths - {0}) >= 3, f"the text did not appear piece by piece: {sorted(lengths)}"
    assert text_of(browser, "#completion-out").startswith("Once upon a time") and text_of(browser, "#completion-out b")

    browser.js("document.getElementById('tab-embeddings').click()")
    browser.wait(
        f"[...document.getElementById('embeddings-model').options].some((o) => o.value === {EMBED_MODEL!r})",
        what="the embedding model in the picker",
    )
    browser.js(f"document.getElementById('embeddings-model').value = {EMBED_MODEL!r}")
    browser.js("document.getElementById('embeddings-model').dispatchEvent(new Event('input', {bubbles: true}))")
    snippet = text_of(browser, "#snippet")
    assert "/v1/embeddings" in snippet and f'"model": "{EMBED_MODEL}"' in snippet and "-N" not in snippet
    browser.js("document.getElementById('embeddings-go').click()")
    rows = browser.wait(
        "document.querySelectorAll('#embeddings-out tbody tr').length === 2 && "
        "[...document.querySelectorAll('#embeddings-out tbody tr')].map((r) => "
        "[...r.cells].map((c) => c.textContent))",
        what="the embeddings",
    )
    with embedder.client() as client:
        direct = client.post("/v1/embeddings", json={"model": EMBED_MODEL, "input": "a red dragon"}).json()
    dimension = len(direct["data"][0]["embedding"])
    assert [r[0] for r in rows] == ["a red dragon", "a castle by the sea"]
    assert all(r[1] == f"{dimension:,}" for r in rows) and dimension > 100
    first = [float(v) for v in rows[0][2].removesuffix(", …").split(", ")]
    assert first == pytest.approx(direct["data"][0]["embedding"][:6], abs=1e-4)

    browser.js("location.hash = '#jobs'")  # the tab's recent jobs: these two, newest first
    recent = browser.wait(
        "document.querySelectorAll('#recent-jobs li').length === 2 && "
        "[...document.querySelectorAll('#recent-jobs li')].map((li) => li.textContent)",
        what="the tab's recent jobs",
    )
    assert "POST /v1/embeddings" in recent[0] and "POST /v1/completions" in recent[1], recent
    browser.js("document.querySelectorAll('#recent-jobs button')[1].click()")
    browser.wait("document.querySelector('#job-events li:last-child b')?.textContent === 'end'", what="its events")
    assert "Statecompleted" in text_of(browser, "#job-fields") and f"Model{MODEL}" in text_of(browser, "#job-fields")
    assert not browser.errors, browser.errors


def test_a_job_is_looked_up_by_id(browser: Browser, gateway: Gateway) -> None:
    with gateway.client() as client:
        job = client.post("/jobs", json={"route": "/completion", "body": {"prompt": "Hi", "n_predict": 4}}).json()
        wait_until(lambda: client.get(f"/jobs/{job['id']}").json()["state"] == "completed", 30, "the job")
    sign_in(browser, gateway, TOKEN)
    browser.wait("!document.getElementById('page-overview').hidden", what="the overview")
    browser.js("location.hash = '#jobs'")
    browser.js("document.getElementById('job-id').focus()")
    browser.type(job["id"])
    browser.press("Enter", "Enter", 13)
    browser.wait("document.querySelector('#job-events li:last-child b')?.textContent === 'end'", what="its events")
    fields = text_of(browser, "#job-fields")
    assert "Statecompleted" in fields and f"Model{MODEL}" in fields and "Attempts1" in fields
    browser.js("document.getElementById('job-id').value = ''")
    browser.type("0" * 32)
    browser.press("Enter", "Enter", 13)
    browser.wait("document.getElementById('job-error').textContent.includes('not found')")
    assert all("404" in e for e in browser.errors), browser.errors
    browser.errors.clear()


def test_an_admin_creates_and_revokes_a_token(browser: Browser, gateway: Gateway) -> None:
    with gateway.client() as client:  # completion tokens of today, for the usage chart
        assert client.post("/completion", json={"prompt": "Hi", "n_predict": 4}).status_code == 200
    sign_in(browser, gateway, TOKEN)
    browser.wait("!document.getElementById('sign-out').hidden", what="the sign-out button")
    browser.js("document.getElementById('sign-out').click()")
    assert browser.js("sessionStorage.getItem('graycat.token')") is None
    assert browser.js("!document.getElementById('sign-in').hidden && document.getElementById('nav').hidden")
    sign_in(browser, gateway, ADMIN)
    browser.wait("!document.querySelector('[data-page=admin]').hidden", what="the admin page's link")
    browser.js("location.hash = '#admin'")
    browser.wait("!!document.querySelector('#tokens tbody tr')", what="the tokens")
    usage = browser.wait(
        "document.getElementById('chart-usage').getAttribute('aria-label').includes(': ') && "
        "document.getElementById('chart-usage').getAttribute('aria-label')",
        what="the usage chart",
    )
    assert re.search(r"static [0-9a-f]{6}: [1-9]", usage), usage  # the test tokens' requests of today
    browser.js(
        "const m = document.getElementById('usage-measure'); m.value = 'completion_tokens';"
        " m.dispatchEvent(new Event('change'))"
    )
    tokens = str(browser.js("document.getElementById('chart-usage').getAttribute('aria-label')"))
    assert re.search(r"^Completion tokens over the last 14 days by token: .*static [0-9a-f]{6}: [1-9]", tokens), tokens
    assert text_of(browser, "#usage-title") == "Completion tokens per day (UTC) by token, last 14 days"
    browser.js("document.getElementById('new-name').focus()")
    browser.type("made-in-console")
    browser.js("document.getElementById('new-rpm').value = '7'")
    browser.js("document.getElementById('token-form').requestSubmit()")
    secret = browser.wait(
        "!document.getElementById('new-secret').hidden && document.getElementById('new-secret-value').textContent",
        what="the new secret",
    )
    with gateway.client(secret) as made:
        assert made.get("/console/session").json()["rpm"] == 7
        row = (
            "[...document.querySelectorAll('#tokens tbody tr')]"
            ".find((r) => r.cells[0].textContent === 'made-in-console')"
        )
        browser.wait(f"{row}?.textContent.includes('7/min')", what="the new token's row")
        browser.js(f"{row}.querySelector('button').click()")
        assert browser.js(f"{row}.querySelector('button').textContent") == "Confirm revoke"
        browser.js(f"{row}.querySelector('button').click()")
        browser.wait(f"{row}?.textContent.includes('revoked')", what="the token to show revoked")
        refused = made.get("/console/session")
        assert refused.status_code == 401 and refused.json()["error"]["message"] == "this API token was revoked"
    assert not browser.errors, browser.errors


def test_an_admin_runs_a_dead_letter_again(browser: Browser, gateway: Gateway, cluster: Cluster) -> None:
    _, job_id = add_dead_letter(cluster.redis.url, fingerprint(TOKEN), b'{"prompt": "Hi", "n_predict": 3}')
    sign_in(browser, gateway, ADMIN)
    browser.wait("!document.querySelector('[data-page=admin]').hidden", what="the admin page's link")
    browser.wait(
        "document.getElementById('attention').textContent.includes('dead letter(s): see Admin')",
        what="the overview to point at the dead letters",
    )
    browser.js("location.hash = '#admin'")
    row = f"[...document.querySelectorAll('#dead tbody tr')].find((r) => r.textContent.includes({job_id!r}))"
    browser.wait(f"!!{row}", what="the dead letter's row")
    button = f"{row}.querySelector('button[aria-label^=\"Run job\"]')"
    browser.js(f"{button}.click()")
    browser.js(f"{button}.click()")  # the second click confirms
    status = browser.wait("document.getElementById('admin-status').textContent", what="the new job")
    assert status.startswith(f"Job {job_id} queued again as job ")
    new = status.split(" as job ")[1].split(";")[0]
    browser.wait(f"!{row}", what="the row to leave the list")
    with gateway.client() as owner:
        wait_until(lambda: owner.get(f"/jobs/{new}").json()["state"] == "completed", 30, "the job run again")
    assert not browser.errors, browser.errors


@pytest.fixture(scope="module")
def image_worker(cluster: Cluster, gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """An SD worker on tiny pipelines, sending a preview every 5 steps, for the rest of this module."""
    models = tmp_path_factory.mktemp("sd")
    build_models_folder(models)
    worker = cluster.sd_worker(models, SD_PREVIEW_EVERY="5")
    yield
    worker.stop()


def test_an_image_is_generated_with_progress_and_a_preview(
    browser: Browser, gateway: Gateway, image_worker: None
) -> None:
    sign_in(browser, gateway, TOKEN)
    browser.wait("!document.getElementById('page-overview').hidden", what="the overview")
    browser.js("location.hash = '#playground'")
    browser.js("document.getElementById('tab-image').click()")
    browser.wait(
        "!document.getElementById('image-form').hidden && document.getElementById('image-model').value"
        " && document.getElementById('image-sampler').options.length",
        what="the image form",
    )
    assert "/sdapi/v1/txt2img" in text_of(browser, "#snippet")
    for field, value in (("image-steps", 60), ("image-width", 128), ("image-height", 128)):
        browser.js(f"document.getElementById('{field}').value = '{value}'")
    browser.js("document.getElementById('image-sampler').value = 'Euler a'")
    browser.js("document.getElementById('image-go').click()")
    progress, previews = set(), set()
    while browser.js("document.getElementById('image-go').disabled"):
        progress.add(browser.js("document.getElementById('image-progress').value"))
        previews.add(browser.js("document.getElementById('image-result').src.length"))
        time.sleep(0.02)
    assert text_of(browser, "#image-status").startswith("Done: seed "), text_of(browser, "#image-status")
    assert len({p for p in progress if 0 < p < 1}) >= 2, f"no progress shown: {sorted(progress)}"
    assert len(previews - {0}) >= 2, "no preview shown before the image"  # previews, then the image
    infotext = text_of(browser, "#image-info")
    assert infotext.startswith("a lighthouse at dusk\nSteps: 60, Sampler: Euler a"), infotext
    seed = text_of(browser, "#image-status").removeprefix("Done: seed ")
    browser.js("document.getElementById('image-reuse').click()")
    assert browser.js("document.getElementById('image-seed').value") == seed and f"Seed: {seed}" in infotext
    assert browser.js("document.getElementById('image-result').naturalWidth") == 128
    if shots := os.environ.get("CONSOLE_SCREENSHOTS"):
        browser.screenshot(Path(shots) / "console-image-desktop.png")
    assert not browser.errors, browser.errors


# A 64x64 PNG made in the page, given to the start image's file input as a user's pick would be.
PICK_START_IMAGE = """(async () => {
  const c = document.createElement("canvas");
  c.width = c.height = 64;
  const g = c.getContext("2d");
  g.fillStyle = "#2a6"; g.fillRect(0, 0, 64, 64); g.fillStyle = "#fc3"; g.fillRect(16, 16, 32, 32);
  const blob = await new Promise((resolve) => c.toBlob(resolve, "image/png"));
  const picked = new DataTransfer();
  picked.items.add(new File([blob], "start.png", { type: "image/png" }));
  const input = document.getElementById("image-init");
  input.files = picked.files;
  input.dispatchEvent(new Event("change", { bubbles: true }));
})()"""


def test_an_image_is_inpainted_from_an_upload_with_a_painted_mask_a_lora_and_a_vae(
    browser: Browser, gateway: Gateway, image_worker: None
) -> None:
    sign_in(browser, gateway, TOKEN)
    browser.wait("!document.getElementById('page-overview').hidden", what="the overview")
    browser.js("location.hash = '#playground'")
    browser.js("document.getElementById('tab-image').click()")
    browser.wait(
        "[...document.getElementById('image-lora').options].some((o) => o.value === 'tinylora') && "
        "[...document.getElementById('image-vae').options].some((o) => o.value === 'tinyvae.safetensors')",
        what="the workers' LoRAs and VAEs in the pickers",
    )
    for field, value in (
        ("image-model", "tiny"),
        ("image-lora", "tinylora"),
        ("image-vae", "tinyvae.safetensors"),
        ("image-steps", 4),
        ("image-seed", 7),
    ):
        browser.js(f"document.getElementById('{field}').value = '{value}'")
    browser.js(PICK_START_IMAGE)
    browser.wait(
        "!document.getElementById('mask-box').hidden && document.getElementById('image-width').value === '64'",
        what="the start image on the mask canvas",
    )
    box = browser.js(
        "(() => { const c = document.getElementById('mask-canvas'); c.scrollIntoView({block: 'center'});"
        " const r = c.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; })()"
    )
    for kind, dx in (("mousePressed", 0), ("mouseMoved", 5), ("mouseReleased", 5)):  # a short stroke
        browser.send(
            "Input.dispatchMouseEvent", type=kind, x=box[0] + dx, y=box[1], button="left", buttons=1, clickCount=1
        )
    snippet = browser.wait(
        "document.getElementById('snippet').textContent.includes('mask.png') && "
        "document.getElementById('snippet').textContent",
        what="the painted mask in the snippet",
    )
    assert "/sdapi/v1/img2img" in snippet and '"init_images": [\n    "<base64 of start.png>"' in snippet
    assert "<lora:tinylora:0.8>" in snippet and '"sd_vae": "tinyvae.safetensors"' in snippet
    assert "data:image" not in snippet  # the images named, not inlined
    browser.js("document.getElementById('image-go').click()")
    browser.wait("!document.getElementById('image-go').disabled", timeout=60, what="the inpainting")
    assert text_of(browser, "#image-status") == "Done: seed 7", text_of(browser, "#image-status")
    infotext = text_of(browser, "#image-info")
    assert "<lora:tinylora:0.8>" in infotext and "Denoising strength: 0.75" in infotext, infotext
    assert "Mask blur: 4" in infotext and "VAE: tinyvae.safetensors" in infotext, infotext  # the mask was sent
    assert browser.js("document.getElementById('image-result').naturalWidth") == 64
    if shots := os.environ.get("CONSOLE_SCREENSHOTS"):
        browser.resize(1280, 1300)  # the result and the painted mask in one picture
        browser.js("document.getElementById('playground-title').scrollIntoView()")
        browser.screenshot(Path(shots) / "console-inpaint-desktop.png")
        browser.send("Emulation.clearDeviceMetricsOverride")
    browser.js("document.getElementById('init-clear').click()")  # back to txt2img
    assert "/sdapi/v1/txt2img" in text_of(browser, "#snippet")
    assert not browser.errors, browser.errors


@pytest.mark.parametrize(
    "width,height,scheme",
    [(1280, 900, "light"), (390, 844, "light"), (1280, 900, "dark")],
    ids=["laptop", "phone", "laptop-dark"],
)
def test_pages_pass_accessibility_checks_and_fit_the_screen(
    browser: Browser, gateway: Gateway, width: int, height: int, scheme: str
) -> None:
    shots = os.environ.get("CONSOLE_SCREENSHOTS") if scheme == "light" else None
    browser.resize(width, height, mobile=width < 600)
    browser.send("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": scheme}])
    sign_in(browser, gateway, ADMIN)
    browser.wait("!document.getElementById('page-overview').hidden", what="the overview")
    browser.open(gateway.base + "/console")  # a reload: the tab's token signs in again by itself
    browser.wait(
        "!document.getElementById('page-overview').hidden && !document.querySelector('[data-page=admin]').hidden",
        what="the overview, signed in again",
    )
    browser.js("location.hash = '#playground'")
    browser.wait("document.getElementById('chat-model').value")
    send_chat(browser, "Say hello in three languages.", 40)  # the pages checked with content in them
    browser.wait(
        "!document.querySelector('#chat-log li[aria-busy]') && "
        "document.getElementById('chat-status').textContent.includes('chunks')",
        what="the chat",
    )
    try:
        for page in ("overview", "playground", "jobs", "admin"):
            browser.js(f"location.hash = '#{page}'")
            browser.wait(f"!document.getElementById('page-{page}').hidden")
            time.sleep(0.3)
            assert browser.js(A11Y) == [], page
            wide = browser.js(
                f"[...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right"
                f" > {width} + 1 && !e.closest('.scroll')).map((e) => e.tagName + '#' + e.id + '.' "
                f"+ e.className).slice(0, 5)"
            )
            assert browser.js("document.documentElement.scrollWidth") <= width and not wide, f"{page}: {wide}"
            if shots:
                browser.screenshot(Path(shots) / f"console-{page}-{'phone' if width < 600 else 'desktop'}.png")
        browser.js("location.hash = '#playground'")
        browser.js("document.getElementById('tab-chat').focus()")
        for panel in ("completion", "embeddings", "image"):
            browser.press("ArrowRight", "ArrowRight", 39)  # the tabs follow the arrow keys
            assert browser.js(
                f"!document.getElementById('panel-{panel}').hidden && document.activeElement.id === 'tab-{panel}'"
            )
            assert browser.js(A11Y) == [], panel
            assert browser.js(f"document.documentElement.scrollWidth <= {width}"), panel
        browser.press("ArrowRight", "ArrowRight", 39)  # round to the first
        assert browser.js("!document.getElementById('panel-chat').hidden")
    finally:
        browser.send("Emulation.clearDeviceMetricsOverride")
        browser.send("Emulation.setEmulatedMedia", features=[])
    assert not browser.errors, browser.errors


def test_the_console_loads_nothing_from_other_origins(gateway: Gateway) -> None:
    """Everything the page loads comes from the server itself (it works offline, and its CSP says so)."""
    page = httpx.get(gateway.base + "/console").text
    names = [part.split("?", 1)[0] for part in page.split("/console/assets/")[1:]]
    for text in [page, *(httpx.get(f"{gateway.base}/console/assets/{name}").text for name in set(names))]:
        assert "://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', ""), text[:200]  # a name, not a load
