"""A headless Chromium (Debian's `chromium` package) driven over the Chrome DevTools Protocol, for the
console's browser tests: evaluate JavaScript, type keys, take screenshots, and collect console errors."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

BINARIES = ("chromium", "chromium-browser", "google-chrome")


def find_browser() -> str:
    found = next((path for name in BINARIES if (path := shutil.which(name))), None)
    assert found, "no Chromium: apt-get install chromium (the console's browser tests drive it)"
    return found


class Browser:
    """One Chromium process with one page; `errors` gathers what the page's console reports as errors."""

    def __init__(self, folder: Path) -> None:
        profile = folder / "profile"
        self.proc = subprocess.Popen(
            [
                find_browser(),
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-sync",
                "--disable-background-networking",
                "--disable-component-update",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "--window-size=1280,900",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(folder / "chromium.log").open("wb"),
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert self.proc.poll() is None, (folder / "chromium.log").read_text()
            assert time.monotonic() < deadline, "Chromium did not open its DevTools port"
            time.sleep(0.05)
        port = port_file.read_text().split()[0]
        pages = [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json() if t["type"] == "page"]
        self._stack = contextlib.ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(
            connect(pages[0]["webSocketDebuggerUrl"], max_size=64 << 20)
        )
        self._ids = itertools.count(1)
        self._replies: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self.errors: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def _read(self) -> None:
        for raw in self.ws:
            message = json.loads(raw)
            if "id" in message:
                with self._cond:
                    self._replies[message["id"]] = message
                    self._cond.notify_all()
            else:
                self._note(message.get("method", ""), message.get("params", {}))

    def _note(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(f"exception: {details.get('exception', {}).get('description') or details['text']}")
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            self.errors.append(
                "console.error: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            )
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            self.errors.append(f"{entry['source']}: {entry['text']} {entry.get('url', '')}")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        with self._cond:
            assert self._cond.wait_for(lambda: call_id in self._replies, 60), f"no answer to {method}"
            reply = self._replies.pop(call_id)
        assert "error" not in reply, f"{method}: {reply['error']}"
        return dict(reply["result"])

    def js(self, expression: str) -> Any:
        """The value of `expression` in the page (awaited when it is a promise)."""
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def wait(self, expression: str, timeout: float = 30, what: str = "") -> Any:
        """Poll `expression` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := self.js(expression):
                return value
            time.sleep(0.05)
        shown = self.js("location.href + ' | ' + document.body?.innerText.replace(/\\s+/g, ' ').slice(0, 400)")
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what or expression}; the page: {shown}; "
            f"console errors: {self.errors}"
        )

    def open(self, url: str) -> None:
        """Load `url` (again, when the page shows it already) and wait until its document is complete."""
        self.js("window.cdpLeft = true")  # marks the page being left: its readiness is not the new one's
        self.send("Page.navigate", url=url)
        self.wait("!window.cdpLeft && document.readyState === 'complete'", what=f"{url} to load")

    def type(self, text: str) -> None:
        """Type into the focused element, as a keyboard would."""
        self.send("Input.insertText", text=text)

    def press(self, key: str, code: str, key_code: int) -> None:
        for kind in ("keyDown", "keyUp"):
            self.send(
                "Input.dispatchKeyEvent",
                type=kind,
                key=key,
                code=code,
                windowsVirtualKeyCode=key_code,
                **({"text": "\r"} if key == "Enter" and kind == "keyDown" else {}),
            )

    def resize(self, width: int, height: int, mobile: bool = False) -> None:
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=mobile)

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        self._stack.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
