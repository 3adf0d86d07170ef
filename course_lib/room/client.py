"""A participant, scripted: log in through the hub's own form, start a server, use the Jupyter
server's API (contents, kernels, and code run over the kernel's websocket).

The tests, the sizing benchmark and an instructor's smoke check drive the room with it, the way
a browser would: the log-in form with its ``_xsrf`` field, JupyterHub's OAuth hand-over to the
participant's server (followed as redirects), and the server's ``_xsrf`` cookie echoed as the
``X-XSRFToken`` header on every API call.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field

import httpx

_XSRF_FIELD = re.compile(r'name="_xsrf"\s+value="([^"]+)"')


@dataclass
class Execution:
    """What one ``execute_request`` produced."""

    status: str = ""  # "ok" | "error"
    stdout: str = ""
    stderr: str = ""
    result: str = ""  # the text/plain of an execute_result
    error: str = ""  # "EName: value" of an error
    seconds: float = 0.0
    messages: list = field(default_factory=list)


class Participant:
    """One person in the room, with their own cookies."""

    def __init__(self, base_url: str, name: str, timeout: float = 60.0):
        self.base_url, self.name = base_url.rstrip("/"), name
        self.http = httpx.Client(
            base_url=self.base_url, timeout=timeout, verify=False, trust_env=False
        )
        self.user_path = f"/user/{name}/"

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------ the hub
    def login(self, code: str, name: str | None = None) -> httpx.Response:
        """Fill in and send the hub's log-in form; 302 when let in, else the page that says why."""
        page = self.http.get("/hub/login")
        page.raise_for_status()
        found = _XSRF_FIELD.search(page.text)
        form = {"username": name or self.name, "password": code}
        if found:
            form["_xsrf"] = found.group(1)
        return self.http.post("/hub/login", data=form, follow_redirects=False)

    def _hub_headers(self) -> dict:
        return {"X-XSRFToken": self.http.cookies.get("_xsrf", path="/hub/") or ""}

    def start_server(self, timeout: float = 180.0) -> float:
        """Ask the hub for this participant's server; wait until it is ready; return seconds."""
        t0 = time.perf_counter()
        answer = self.http.post(f"/hub/api/users/{self.name}/server", headers=self._hub_headers())
        if answer.status_code not in (201, 202, 400):  # 400: already running
            raise RuntimeError(f"starting the server: {answer.status_code} {answer.text[:500]}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.http.get(f"/hub/api/users/{self.name}", headers=self._hub_headers())
            model.raise_for_status()
            server = model.json().get("servers", {}).get("", {})
            if server.get("ready"):
                break
            if not server.get("pending") and not server:
                raise RuntimeError(f"the server of {self.name} stopped while starting")
            time.sleep(0.5)
        else:
            raise TimeoutError(f"the server of {self.name} was not ready within {timeout:.0f} s")
        lab = self.http.get(self.user_path + "lab", follow_redirects=True)  # OAuth, _xsrf cookie
        lab.raise_for_status()
        return time.perf_counter() - t0

    # ------------------------------------------------------------------ the Jupyter server
    def _server_headers(self) -> dict:
        return {"X-XSRFToken": self.http.cookies.get("_xsrf", path=self.user_path) or ""}

    def api(self, method: str, path: str, owner: str | None = None, **kwargs) -> httpx.Response:
        """A call to ``/user/OWNER/api/PATH`` (OWNER defaults to this participant)."""
        prefix = f"/user/{owner or self.name}/api/"
        return self.http.request(method, prefix + path, headers=self._server_headers(), **kwargs)

    def start_kernel(self) -> str:
        answer = self.api("POST", "kernels", json={"name": "python3"})
        answer.raise_for_status()
        return answer.json()["id"]

    def execute(self, kernel_id: str, codes: list[str], timeout: float = 120.0) -> list[Execution]:
        """Run each code in ``codes`` in the kernel, in order, over its websocket."""
        import websocket

        url = self.base_url.replace("http", "ws", 1) + self.user_path
        url += f"api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}"
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.http.cookies.jar)
        socket = websocket.create_connection(
            url, header=[f"Cookie: {cookies}"], timeout=timeout, sslopt={"cert_reqs": 0}
        )
        try:
            return [_run_one(socket, code, timeout) for code in codes]
        finally:
            socket.close()


def _run_one(socket, code: str, timeout: float) -> Execution:
    msg_id = uuid.uuid4().hex
    request = {
        "header": {
            "msg_id": msg_id,
            "username": "room",
            "session": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {"code": code, "silent": False, "store_history": True, "allow_stdin": False},
        "channel": "shell",
        "buffers": [],
    }
    out, t0 = Execution(), time.perf_counter()
    socket.send(json.dumps(request))
    deadline = time.monotonic() + timeout
    replied = idle = False
    while not (replied and idle):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no answer within {timeout:.0f} s to:\n{code[:300]}")
        message = json.loads(socket.recv())
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = message["msg_type"], message["content"]
        out.messages.append(kind)
        if kind == "stream":
            name = "stdout" if content["name"] == "stdout" else "stderr"
            setattr(out, name, getattr(out, name) + content["text"])
        elif kind == "execute_result":
            out.result += content["data"].get("text/plain", "")
        elif kind == "error":
            out.error = f"{content['ename']}: {content['evalue']}"
        elif kind == "execute_reply":
            out.status, replied = content["status"], True
        elif kind == "status" and content["execution_state"] == "idle":
            idle = True
    out.seconds = time.perf_counter() - t0
    return out
