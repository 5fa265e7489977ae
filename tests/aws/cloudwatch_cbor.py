"""CloudWatch for the Rust SDK on moto.

The Rust AWS SDK calls CloudWatch with the Smithy RPC v2 CBOR protocol
(``POST /service/GraniteServiceVersion20100801/operation/<Operation>``, CBOR bodies,
timestamps as CBOR tag 1); moto 5.2 serves CloudWatch's AWS JSON 1.0 protocol only
(``POST /`` with ``X-Amz-Target: GraniteServiceVersion20100801.<Operation>``) and
answers the CBOR path with 404. This shim, given to a process as
``AWS_ENDPOINT_URL_CLOUDWATCH``, translates each request to JSON for moto and the
answer back to CBOR, so `zru doctor` reads alarms and metrics that the tests put on
moto with boto3. It changes no value: only the encoding.
(Protocol: https://smithy.io/2.0/additional-specs/protocols/smithy-rpc-v2.html)
"""

from __future__ import annotations

import datetime
import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cbor2

PREFIX = "/service/GraniteServiceVersion20100801/operation/"
TARGET = "GraniteServiceVersion20100801."
# Members of CloudWatch's shapes that are timestamps (epoch seconds in JSON, tag 1 in CBOR).
TIMESTAMPS = {"Timestamp", "StateUpdatedTimestamp", "AlarmConfigurationUpdatedTimestamp",
              "StateTransitionedTimestamp", "StartTime", "EndTime", "LastUpdated"}


def to_json(value):
    """A decoded CBOR request as JSON values (datetimes as epoch seconds)."""
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, cbor2.CBORTag) and value.tag == 1:
        return value.value
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value


def to_cbor(value, key=None):
    """A JSON answer as CBOR values: timestamps tagged, numbers of double members as
    floats (Smithy decoders take a double only as a CBOR float)."""
    if isinstance(value, dict):
        return {k: to_cbor(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [to_cbor(v, key) for v in value]
    if key in TIMESTAMPS and isinstance(value, (int, float)):
        return cbor2.CBORTag(1, float(value))
    if isinstance(value, int) and not isinstance(value, bool) and key in DOUBLES:
        return float(value)
    return value


DOUBLES = {"Maximum", "Minimum", "Average", "Sum", "SampleCount", "Threshold", "Value"}


class CloudWatchCbor:
    """A loopback HTTP server translating CloudWatch RPC v2 CBOR to moto's JSON."""

    def __init__(self, moto_endpoint: str):
        moto = moto_endpoint

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                if not self.path.startswith(PREFIX):
                    self.send_error(404, f"not a CloudWatch CBOR operation: {self.path}")
                    return
                operation = self.path[len(PREFIX):]
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                params = to_json(cbor2.loads(body)) if body else {}
                request = urllib.request.Request(
                    moto + "/", data=json.dumps(params).encode(), method="POST",
                    headers={"Content-Type": "application/x-amz-json-1.0",
                             "X-Amz-Target": TARGET + operation,
                             "Authorization": self.headers.get("Authorization", "")})
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status, answer = response.status, response.read()
                except urllib.error.HTTPError as error:
                    status, answer = error.code, error.read()
                decoded = json.loads(answer) if answer.strip() else {}
                if status >= 400 and "__type" in decoded:
                    decoded["__type"] = decoded["__type"].rsplit("#", 1)[-1]
                payload = cbor2.dumps(to_cbor(decoded))
                self.send_response(status)
                self.send_header("Content-Type", "application/cbor")
                self.send_header("smithy-protocol", "rpc-v2-cbor")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "CloudWatchCbor":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
