"""The HTTP side: a threaded server on loopback that answers the Messages API from a `ScriptPlayer`."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from longrun.scheduler.endpoints.loopback import LoopbackHTTPServer, LoopbackServer
from longrun.scheduler.endpoints.scripted.player import (
    Reply,
    ScriptPlayer,
    error_reply,
    estimate_input_tokens,
)
from longrun.scheduler.endpoints.scripted.script import Script


class _Handler(BaseHTTPRequestHandler):
    """One request; each runs in its own thread, so a slow turn blocks nobody else."""

    # One request per connection: after stop() no kept-alive connection can reach a handler.
    protocol_version = "HTTP/1.1"
    server: LoopbackHTTPServer
    server_version = "longrun-scripted"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:
        self._send(error_reply(404, f"Not found: {self.path} (scripted model server)"))

    def do_POST(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        if path not in ("/v1/messages", "/v1/messages/count_tokens"):
            self._send(error_reply(404, f"Not found: {path} (scripted model server)"))
            return
        try:
            length = int(self.headers.get("content-length") or 0)
            request = json.loads(self.rfile.read(length) or b"null")
        except (ValueError, UnicodeDecodeError):
            self._send(error_reply(400, "The request body is not valid JSON."))
            return
        if not isinstance(request, dict):
            self._send(error_reply(400, "The request body must be a JSON object."))
            return
        if path.endswith("count_tokens"):
            body = {"input_tokens": estimate_input_tokens(request)}
            self._send(
                Reply(200, {"request-id": "req_scripted_count", "content-type": "application/json"}, body)
            )
            return
        owner: ScriptedModelServer = self.server.owner
        owner._record(request, dict(self.headers.items()))
        reply = owner._player.answer_message(request)
        if reply.delay and owner._stop_requested.wait(reply.delay):
            return  # stopped while a slow turn waited: answer nothing, like a dropped connection
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.close_connection = True
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("connection", "close")
            if reply.body is not None:
                payload = json.dumps(reply.body, ensure_ascii=False).encode()
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            self.end_headers()
            for event, data in reply.events:
                self.wfile.write(f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a time box, a cancelled task): nothing to tell it


class ScriptedModelServer(LoopbackServer):
    """An Anthropic-compatible Messages API on loopback that plays `script`.

    `first_session` is the (0-based) script session the first new conversation takes, so a
    server started for a resumed run can carry on where the last one stopped.
    """

    HANDLER = _Handler
    NAME = "scripted-model-server"

    def __init__(
        self, script: Script, *, first_session: int = 0, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(host, port)
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []
        """The headers of each of `requests` (in memory only, for a test to see what a client sent)."""
        self._player = ScriptPlayer(script, first_session)
        self._stop_requested = threading.Event()
        self._lock = threading.Lock()

    def _starting(self) -> None:
        self._stop_requested.clear()

    def _stopping(self) -> None:
        """Turns still waiting out a delay answer nothing."""
        self._stop_requested.set()

    def _record(self, request: dict[str, Any], headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(request)
            self.request_headers.append(headers)
