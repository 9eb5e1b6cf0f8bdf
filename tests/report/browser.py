"""Headless Debian chromium driven over the DevTools protocol on a pipe (no extra
packages): load a page, collect console errors, read the DOM, take a full-page screenshot.

    with Chromium(tmp_path / "profile") as b:
        page = b.load(Path("report.html"))       # errors, section ids, text, screenshot bytes

`--remote-debugging-pipe` makes chromium read JSON commands from fd 3 and write
replies and events to fd 4, each message ended by a NUL byte.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Page:
    errors: list[str]          # console errors, uncaught exceptions, failed loads
    section_ids: list[str]
    section_boxes: dict[str, list[float]]   # id -> [top, height] in CSS pixels
    text: str
    screenshot: bytes          # PNG of the whole page


class Chromium:
    def __init__(self, profile_dir: Path, timeout: float = 60.0) -> None:
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if exe is None:
            raise RuntimeError("Debian chromium is not installed (apt-get install chromium)")
        self.exe, self.profile, self.timeout = exe, profile_dir, timeout
        self._id = 0
        self._buf = b""
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> Chromium:
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()
        # chromium's fd 3 is our write pipe's read end, fd 4 the read pipe's write end
        self.proc = subprocess.Popen(
            [self.exe, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             f"--user-data-dir={self.profile}", "--window-size=1280,900", "--hide-scrollbars",
             "about:blank"],
            pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=lambda: (os.dup2(to_chrome_r, 3), os.dup2(from_chrome_w, 4)))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.send("Browser.close")
        except Exception:  # noqa: BLE001  (already gone)
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._w)
        os.close(self._r)

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._r, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        for i, e in enumerate(self.events):
            if e.get("method") == method:
                return self.events.pop(i)
        while True:
            e = self._read(deadline)
            if e.get("method") == method:
                return e
            self.events.append(e)

    def load(self, path: Path) -> Page:
        self.events.clear()
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        s = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable", s)
        self.send("Page.navigate", s, url=path.resolve().as_uri())
        self.wait_event("Page.loadEventFired")
        ids = self._eval(s, "JSON.stringify([...document.querySelectorAll('section')].map(e => e.id))")
        text = self._eval(s, "document.body.innerText")
        boxes = self._eval(s, "JSON.stringify(Object.fromEntries([...document.querySelectorAll('section')]"
                              ".map(e => [e.id, [e.getBoundingClientRect().top + window.scrollY, "
                              "e.getBoundingClientRect().height]])))")
        size = self.send("Page.getLayoutMetrics", s)["cssContentSize"]
        shot = self.send("Page.captureScreenshot", s, format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": size["width"],
                               "height": min(size["height"], 16000), "scale": 1})
        return Page(self._errors(s), json.loads(ids), json.loads(boxes), text,
                    base64.b64decode(shot["data"]))

    def _eval(self, session: str, expr: str) -> Any:
        return self.send("Runtime.evaluate", session, expression=expr, returnByValue=True)["result"]["value"]

    def _errors(self, session: str) -> list[str]:
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e.get("sessionId") != session:
                continue
            if e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
            elif e.get("method") == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                out.append(d.get("exception", {}).get("description", d.get("text", "")))
            elif e.get("method") == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(p["entry"]["text"])
        return out
