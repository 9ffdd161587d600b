"""Server events as bytes: one frame dict per published event, encoded once per variant and
wrapped once in an RFC 6455 server frame, so the same bytes go to every connection.

Pure functions and small value classes: no sockets, no Redis.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Literal

import msgpack

Format = Literal["json", "msgpack"]
FORMATS: tuple[Format, ...] = ("json", "msgpack")

OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9

#: Event types that a brand-token connection of the brand room also receives from its mirrors
#: (the merged moderation feed).
MODERATED_TYPES = frozenset({"chat", "chat_hidden"})


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked, final server frame (servers never mask, RFC 6455 §5.1)."""
    length = len(payload)
    first = 0x80 | opcode
    if length < 126:
        header = struct.pack("!BB", first, length)
    elif length < 65536:
        header = struct.pack("!BBH", first, 126, length)
    else:
        header = struct.pack("!BBQ", first, 127, length)
    return header + payload


def close_frame(code: int, reason: str = "") -> bytes:
    return ws_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode()[:120])


PING_FRAME = ws_frame(OP_PING, b"lc")


def encode_payload(frame: dict[str, Any], fmt: Format) -> bytes:
    if fmt == "msgpack":
        return msgpack.packb(frame, use_bin_type=True)
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class Encoded:
    """One encoded event: the payload (for an ASGI send) and the ready-to-write frame bytes."""

    payload: bytes
    raw: bytes
    text: bool

    @classmethod
    def of(cls, frame: dict[str, Any], fmt: Format) -> Encoded:
        payload = encode_payload(frame, fmt)
        text = fmt == "json"
        return cls(payload, ws_frame(OP_TEXT if text else OP_BINARY, payload), text)


def direct_event(type_: str, seq: int, ts: int, **fields: Any) -> dict[str, Any]:
    """An event to one connection (hello, snapshot, order, error): never published."""
    return {"type": type_, "seq": seq, "ts": ts, **fields}


class PublishedEvent:
    """A published event parsed once, with its private hub instructions split off.

    ``left_by_room`` gives allocated rooms their own ``left``; ``total`` is added only for
    brand-token connections of the brand room. Each variant (format × room-specific fields) is
    encoded at most once, on first use.
    """

    __slots__ = ("_cache", "frame", "left_by_room", "scope", "seq", "total", "type")

    def __init__(self, seq: int, ts: int, scope: str, body: str) -> None:
        fields = json.loads(body)
        if not isinstance(fields, dict):
            fields = {}
        self.left_by_room: dict[str, Any] | None = fields.pop("_left_by_room", None)
        self.total: Any = fields.pop("_total", None)
        for key in [key for key in fields if key.startswith("_")]:
            del fields[key]
        self.seq = seq
        self.scope = scope
        self.type = str(fields.pop("type", ""))
        self.frame: dict[str, Any] = {"type": self.type, "seq": seq, "ts": ts, **fields}
        self._cache: dict[tuple[Format, Any, bool], Encoded] = {}

    def chat_ref(self) -> tuple[str, str] | None:
        """``(room_id, chat_id)`` when this is a chat line (hidden lines are skipped on replay)."""
        if self.type != "chat":
            return None
        return str(self.frame.get("room_id", "")), str(self.frame.get("id", ""))

    def reaches(self, room_id: str, moderator: bool) -> bool:
        """Whether a connection of ``room_id`` (a brand-token one if ``moderator``) gets it."""
        if self.scope == "" or self.scope == room_id:
            return True
        return moderator and self.type in MODERATED_TYPES

    def encoded(self, fmt: Format, room_id: str, moderator: bool) -> Encoded:
        left = None
        if self.left_by_room is not None:
            left = self.left_by_room.get(room_id)
        with_total = moderator and self.total is not None
        key = (fmt, left, with_total)
        found = self._cache.get(key)
        if found is None:
            frame = self.frame
            if left is not None:
                frame = {**frame, "left": left}
            if with_total:
                frame = {**frame, "total": self.total}
            found = self._cache[key] = Encoded.of(frame, fmt)
        return found
