"""Local AWS for the tests: a moto server and a Lambda Runtime API emulator.

- :class:`MotoServer` starts ``python -m moto.server`` on a free loopback port and
  stops it; :meth:`MotoServer.reset` clears its state between tests.
- :class:`RuntimeApi` serves the four Lambda Runtime API endpoints that
  ``lambda_runtime`` uses, so the real ``bootstrap`` binaries run as they would in
  Lambda: :meth:`RuntimeApi.invoke` hands one event to the function and waits for its
  response or error.
- :class:`LambdaFunction` runs one bootstrap binary against a :class:`RuntimeApi`.

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REGION = "us-east-1"
ACCOUNT = "123456789012"
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class MotoServer:
    """``moto.server`` on a free loopback port, in a subprocess of this Python."""

    def __init__(self, log: Path):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> "MotoServer":
        self._log = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT,
            env={**os.environ, **DUMMY_CREDENTIALS},
        )
        wait_for_port(self.port, 60, self.proc)
        return self

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=30).read()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def env(self) -> dict[str, str]:
        """Environment for a process that talks to this emulator."""
        return {**DUMMY_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def client(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing",
                            aws_session_token="testing")


# --------------------------------------------------------------------------
# Lambda Runtime API
# --------------------------------------------------------------------------

API = "/2018-06-01/runtime"


@dataclass
class Invocation:
    request_id: str
    event: object
    deadline_ms: int
    done: threading.Event
    ok: bool | None = None
    payload: object = None
    error_type: str | None = None


class RuntimeApi:
    """The four endpoints of the Lambda Runtime API, one invocation at a time."""

    def __init__(self):
        self.port = free_port()
        self.pending: "queue.Queue[Invocation]" = queue.Queue()
        self.by_id: dict[str, Invocation] = {}
        self.init_errors: list[dict] = []
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, body: bytes = b"", headers: dict | None = None):
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def do_GET(self):
                if self.path != f"{API}/invocation/next":
                    return self._send(404)
                inv = api.pending.get()
                if inv is None:  # shutting down
                    return self._send(500)
                self._send(200, json.dumps(inv.event).encode(), {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(inv.deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn":
                        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:zru",
                    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                })

            def do_POST(self):
                body = self._body()
                if self.path == f"{API}/init/error":
                    api.init_errors.append(json.loads(body or b"{}"))
                    return self._send(202, b"{}")
                parts = self.path[len(API) + 1:].split("/")
                if len(parts) != 3 or parts[0] != "invocation":
                    return self._send(404)
                inv = api.by_id.get(parts[1])
                if inv is None:
                    return self._send(400)
                if parts[2] == "response":
                    inv.ok, inv.payload = True, json.loads(body) if body else None
                elif parts[2] == "error":
                    inv.ok = False
                    inv.payload = json.loads(body) if body else None
                    inv.error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
                else:
                    return self._send(404)
                self._send(202, b"{}")
                inv.done.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "RuntimeApi":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.pending.put(None)  # release a waiting /next
        self.server.shutdown()
        self.server.server_close()

    def invoke(self, event, *, timeout_s: float = 120, deadline_s: float | None = None
               ) -> Invocation:
        """Hands ``event`` to the function; returns once it answered (or raises)."""
        budget = deadline_s if deadline_s is not None else timeout_s
        inv = Invocation(request_id=str(uuid.uuid4()), event=event,
                         deadline_ms=int((time.time() + budget) * 1000),
                         done=threading.Event())
        self.by_id[inv.request_id] = inv
        self.pending.put(inv)
        if not inv.done.wait(timeout_s):
            raise TimeoutError(f"no answer to invocation {inv.request_id} after {timeout_s}s; "
                               f"init errors: {self.init_errors}")
        return inv


class LambdaFunction:
    """A bootstrap binary running against its own :class:`RuntimeApi`."""

    def __init__(self, bootstrap: Path, name: str, env: dict[str, str], log: Path,
                 memory_mb: int = 1024):
        if not bootstrap.is_file():
            raise FileNotFoundError(f"{bootstrap} does not exist (cargo lambda build)")
        self.api = RuntimeApi().start()
        self.log_path = log
        self._log = open(log, "ab")
        self.proc = subprocess.Popen(
            [str(bootstrap)], stdout=self._log, stderr=subprocess.STDOUT,
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "AWS_LAMBDA_RUNTIME_API": self.api.address,
                "AWS_LAMBDA_FUNCTION_NAME": name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": "test",
                "RUST_BACKTRACE": "1",
                **env,
            },
        )

    def invoke(self, event, **kw) -> Invocation:
        if self.proc.poll() is not None:
            raise RuntimeError(f"function exited with {self.proc.returncode}:\n{self.log()}")
        return self.api.invoke(event, **kw)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.api.stop()
        self._log.close()
