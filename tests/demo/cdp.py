"""A small Chrome DevTools Protocol client over Chromium's --remote-debugging-pipe (no websocket library):
drive a page of headless Chromium (upload a file, type, click, read the DOM, screenshot) and record every
request the page makes. With ``offline`` the browser resolves no host name but 127.0.0.1."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.browser import FLAGS, find_chromium

OFFLINE = '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1'


class Browser:
    """One headless Chromium with one page; ``requests`` lists the URL of every request the page sent."""

    def __init__(self, width: int = 1280, height: int = 1000, offline: bool = True) -> None:
        exe = find_chromium()
        if exe is None:
            raise RuntimeError("chromium not found")
        to_child, self._out = os.pipe()  # we write commands, Chromium reads them on its fd 3
        self._in, from_child = os.pipe()  # Chromium writes replies and events on its fd 4
        flags = [f for f in FLAGS if not f.startswith("--virtual-time")]
        args = [exe, *flags, "--remote-debugging-pipe", f"--window-size={width},{height}", "--no-first-run",
                "--user-data-dir=" + str(Path(os.environ.get("TMPDIR", "/tmp")) / f"dvsa-cdp-{os.getpid()}-{id(self)}"),
                *([OFFLINE] if offline else []), "about:blank"]
        cmd = 'exec "$@" 3<&{} 4>&{}'.format(to_child, from_child)
        self.proc = subprocess.Popen(["bash", "-c", cmd, "chromium", *args], pass_fds=(to_child, from_child),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_child)
        os.close(from_child)
        self._next, self._buffer, self.requests = 0, b"", []  # type: list[str]
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Network", "Runtime", "DOM"):
            self.call(f"{domain}.enable", session=True)

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._in, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message = json.loads(raw)
        if message.get("method") == "Network.requestWillBeSent":
            self.requests.append(message["params"]["request"]["url"])
        return message

    def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        """Send one command (to the page's session when `session`) and return its result."""
        self._next += 1
        message = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def js(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", session=True, url=url)

    def wait(self, expression: str, timeout: float = 30.0) -> Any:
        """Poll a JavaScript expression until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"waited {timeout:g} s for {expression}")

    def upload(self, selector: str, path: str | Path) -> None:
        """Set the file of the <input type=file> matching `selector` (as a person choosing it would)."""
        root = self.call("DOM.getDocument", session=True, depth=-1, pierce=True)["root"]["nodeId"]
        node = self.call("DOM.querySelector", session=True, nodeId=root, selector=selector)["nodeId"]
        if not node:
            raise RuntimeError(f"no element {selector}")
        self.call("DOM.setFileInputFiles", session=True, nodeId=node, files=[str(Path(path).resolve())])

    def screenshot(self, png: str | Path) -> None:
        data = self.call("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True)["data"]
        Path(png).write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._in)
        os.close(self._out)
