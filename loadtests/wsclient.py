"""A synchronous room WebSocket for locust users: ``websocket-client`` under gevent.

Locust runs every simulated user as a greenlet in a gevent-patched process, so a blocking
socket read yields to the other users; no asyncio event loop may run inside a locust worker.
Every connect and every close is reported to locust's statistics as request type ``WS``.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from typing import Any
from urllib.parse import urlsplit

import websocket
from locust.env import Environment

REQUEST_TYPE = "WS"


def report(
    environment: Environment,
    name: str,
    response_time_ms: float,
    exception: BaseException | None = None,
    length: int = 0,
    request_type: str = REQUEST_TYPE,
) -> None:
    """One entry in locust's statistics (a failure when ``exception`` is given)."""
    environment.events.request.fire(
        request_type=request_type,
        name=name,
        response_time=max(response_time_ms, 0.0),
        response_length=length,
        exception=exception,
        context={},
    )


class SocketClosed(Exception):
    """The server closed the connection; ``code`` is its close code (1006 when none came)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"closed {code} {reason}".strip())
        self.code = code


def _open_socket(url: str, source_ip: str | None, timeout_s: float) -> socket.socket | None:
    """A TCP socket bound to ``source_ip`` (127.0.0.x spreads a local test over more source
    ports than one address has), or None to let websocket-client open its own."""
    if not source_ip:
        return None
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    sock = socket.create_connection(
        (parts.hostname or "127.0.0.1", port), timeout=timeout_s, source_address=(source_ip, 0)
    )
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class RoomSocket:
    """One viewer's connection to ``/ws/rooms/{id}``: JSON events in, JSON messages out."""

    def __init__(self, environment: Environment, ws: websocket.WebSocket) -> None:
        self.environment = environment
        self.ws = ws
        self.last_seq: int | None = None

    @classmethod
    def connect(
        cls,
        environment: Environment,
        url: str,
        source_ip: str | None = None,
        timeout_s: float = 30.0,
    ) -> RoomSocket:
        """Open the connection; its time to the handshake's end is reported as ``connect``."""
        started = time.perf_counter()
        try:
            ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=False)
            sock = _open_socket(url, source_ip, timeout_s)
            ws.connect(url, timeout=timeout_s, socket=sock, suppress_origin=True)
        except Exception as exc:
            report(environment, "connect", (time.perf_counter() - started) * 1000, exc)
            raise
        report(environment, "connect", (time.perf_counter() - started) * 1000)
        return cls(environment, ws)

    def send(self, message: dict[str, Any]) -> None:
        """Send one JSON message; raises SocketClosed when the connection is gone."""
        try:
            self.ws.send(json.dumps(message, separators=(",", ":")))
        except (websocket.WebSocketConnectionClosedException, OSError) as exc:
            raise SocketClosed(1006, str(exc)) from exc

    def recv(self, timeout_s: float) -> dict[str, Any] | None:
        """The next event, or None when none came within ``timeout_s``.

        Raises SocketClosed when the server closes (or the connection drops)."""
        self.ws.settimeout(max(timeout_s, 0.001))
        try:
            opcode, frame = self.ws.recv_data_frame()
        except websocket.WebSocketTimeoutException:
            return None
        except (websocket.WebSocketConnectionClosedException, OSError) as exc:
            raise SocketClosed(1006, str(exc)) from exc
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            data = frame.data or b""
            code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
            raise SocketClosed(code, data[2:].decode("utf-8", "replace"))
        if opcode != websocket.ABNF.OPCODE_TEXT:
            return None
        event: dict[str, Any] = json.loads(frame.data)
        seq = event.get("seq")
        if isinstance(seq, int) and event.get("type") not in ("hello", "order", "error"):
            self.last_seq = seq
        return event

    def close(self) -> None:
        try:
            self.ws.close(timeout=1)
        except Exception:  # a dying connection has nothing more to tell
            self.ws.shutdown()
