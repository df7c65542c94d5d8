"""Headless Chromium driven over the DevTools protocol, for the HTML report's tests.

:func:`load_page` opens a file in a fresh browser, waits for it to load and
returns what happened: console errors, uncaught exceptions, every request
the page made, and the values of JavaScript expressions evaluated in it.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
]


@dataclasses.dataclass
class PageResult:
    errors: list[str]
    requests: list[str]
    values: dict[str, Any]


class _DevTools:
    def __init__(self, url: str) -> None:
        import websocket

        self.socket = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        self.socket.send(json.dumps(message))
        while True:
            reply = json.loads(self.socket.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self.events.append(reply)

    def wait_for(self, method: str, deadline: float) -> None:
        if any(event.get("method") == method for event in self.events):
            return
        while time.monotonic() < deadline:
            event = json.loads(self.socket.recv())
            self.events.append(event)
            if event.get("method") == method:
                return
        raise TimeoutError(f"no {method} from the browser")


def load_page(path: Path, expressions: dict[str, str]) -> PageResult:
    """Load ``path`` in headless Chromium; evaluate each expression once it has loaded."""
    assert CHROMIUM is not None, "chromium is not installed (apt-get install chromium)"
    profile = tempfile.mkdtemp(prefix="flow2-chromium-")
    # Its log goes to a file: a pipe nobody reads would fill and block it.
    log = Path(profile) / "stderr.log"
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0"],
            stderr=stderr,
            stdout=subprocess.DEVNULL,
        )
    try:
        url = ""
        deadline = time.monotonic() + 60
        while not url and time.monotonic() < deadline and process.poll() is None:
            found = re.search(r"DevTools listening on (ws://\S+)", log.read_text(errors="replace"))
            if found:
                url = found.group(1)
            else:
                time.sleep(0.05)  # polling a log file for a line, not racing a result
        assert url, "chromium did not start its DevTools endpoint: " + log.read_text()[-2000:]
        tools = _DevTools(url)
        target = tools.send("Target.createTarget", url="about:blank")["targetId"]
        session = tools.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            tools.send(f"{domain}.enable", session)
        tools.events.clear()
        tools.send("Page.navigate", session, url=path.resolve().as_uri())
        tools.wait_for("Page.loadEventFired", time.monotonic() + 60)
        values = {}
        for name, expression in expressions.items():
            result = tools.send(
                "Runtime.evaluate",
                session,
                expression=expression,
                returnByValue=True,
                awaitPromise=True,
            )
            values[name] = result.get("result", {}).get("value")
        errors, requests = [], []
        for event in tools.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                errors.append(json.dumps(params.get("exceptionDetails", {}))[:500])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(json.dumps(params.get("args", []))[:500])
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                errors.append(params["entry"].get("text", "")[:500])
            elif method == "Network.requestWillBeSent":
                requests.append(params.get("request", {}).get("url", ""))
        tools.socket.close()
        return PageResult(errors, requests, values)
    finally:
        process.kill()
        process.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)
