"""A headless Chromium driven over the DevTools protocol: open a page with a cookie, read it, screenshot it.

Enough for the dashboard test: set the UI's ``_token`` cookie, load ``/flareflow/``, evaluate a few
expressions once the page has loaded, capture a PNG.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--window-size=1400,1800", "--remote-debugging-port=0"]


def chromium() -> str | None:
    """Return the Chromium executable, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class Page:
    """One browser tab, spoken to over its DevTools websocket."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.next_id = 0

    def call(self, method: str, timeout_s: float = 60, **params: Any) -> dict[str, Any]:
        """Send a command and return its result (events meanwhile are dropped)."""
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = json.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
        raise TimeoutError(method)

    def open(self, url: str, cookies: dict[str, str], timeout_s: float = 60) -> int:
        """Load ``url`` with ``cookies`` set for it; return the HTTP status of the document."""
        self.call("Network.enable")
        for name, value in cookies.items():
            self.call("Network.setCookie", name=name, value=value, url=url)
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.evaluate("document.readyState")
            if state == "complete":
                break
            time.sleep(0.5)
        entries = self.evaluate("JSON.stringify(performance.getEntriesByType('navigation')"
                                ".map(e => e.responseStatus))")
        return int(json.loads(entries)[0])

    def evaluate(self, expression: str) -> Any:
        """Return the value of a JavaScript expression in the page."""
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        """Write a PNG of the whole page."""
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path


@contextmanager
def headless_page(executable: str) -> Iterator[Page]:
    """Start a headless Chromium with a throwaway profile; yield its first tab; stop it."""
    profile = Path(tempfile.mkdtemp(prefix="flareflow-chromium-"))
    process = subprocess.Popen([executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.is_file() or not port_file.read_text().strip():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.2)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
            target = next(t for t in json.load(reply) if t["type"] == "page")
        with connect(target["webSocketDebuggerUrl"], max_size=None) as socket:
            yield Page(socket)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(profile, ignore_errors=True)
