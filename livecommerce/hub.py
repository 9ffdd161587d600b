"""This process's WebSocket connections, grouped by brand room, and the fan-out to them.

One Redis pub/sub connection per process; one channel subscription per brand room that has local
connections (in the brand room or any of its mirrors). Each published event is parsed once,
encoded once per variant (format × room-specific fields) and the same frame bytes are written
straight to every connection's transport without awaiting, like ``websockets.broadcast``. The
transport's write buffer is the bounded send queue: past ``MAX_BUFFER`` bytes, or not drained for
``DRAIN_TIMEOUT_S``, the connection is closed with 4408 and never slows the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from livecommerce.broker import Broker, Message, channel
from livecommerce.chat import CardStore, ChatStore
from livecommerce.db import Database
from livecommerce.events import PING_FRAME, Encoded, Format, PublishedEvent, close_frame
from livecommerce.metrics import Metrics
from livecommerce.models import Dealer, Room
from livecommerce.presence import Presence

log = logging.getLogger("livecommerce.hub")

MAX_BUFFER = 1024 * 1024
DRAIN_TIMEOUT_S = 10.0
CLOSE_GRACE_S = 10.0  # after our close frame, abort a transport the peer never closes
PING_EVERY_S = 20.0
SWEEP_EVERY_S = 1.0
IDLE_GROUP_S = 5.0  # keep an empty brand room subscribed a little, for quick reconnects
FALLBACK_QUEUE = 512

Send = Callable[[dict[str, Any]], Awaitable[None]]

#: Close code for a connection that cannot keep up (design.md §5).
TOO_SLOW = 4408
#: Close code when the server goes away (shutdown): reconnect with ``since``.
GOING_AWAY = 1001


class RedactTokens(logging.Filter):
    """uvicorn logs every WebSocket handshake with its query string, which carries the token."""

    PATTERN = re.compile(r"token=[^&\s\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                self.PATTERN.sub("token=…", a) if isinstance(a, str) else a for a in record.args
            )
        return True


def redact_tokens_in_server_logs() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, RedactTokens) for f in logger.filters):
        logger.addFilter(RedactTokens())


class Connection:
    """One WebSocket of this process, as the hub sees it: where to write, what it has been sent.

    Until ``go_live`` the connection is *pending*: live events are kept aside while its snapshot
    or replay is sent, then the ones it has not covered follow in order.
    """

    __slots__ = (
        "__weakref__",
        "backlog_since",
        "brand_room_id",
        "closing",
        "fmt",
        "hub",
        "last_seq",
        "moderator",
        "pending",
        "queue",
        "room_id",
        "transport",
        "viewer_name",
        "writer",
    )

    def __init__(
        self,
        hub: Hub,
        room_id: str,
        brand_room_id: str,
        moderator: bool,
        fmt: Format,
        transport: asyncio.Transport | None,
        send: Send,
    ) -> None:
        self.hub = hub
        self.room_id = room_id
        self.brand_room_id = brand_room_id
        self.moderator = moderator
        self.fmt: Format = fmt
        self.transport = transport
        self.pending: list[tuple[int, Encoded]] | None = []
        self.last_seq = 0
        self.closing = False
        self.backlog_since: float | None = None
        self.viewer_name: str | None = None
        self.queue: asyncio.Queue[Encoded | int] | None = None
        self.writer: asyncio.Task[None] | None = None
        if transport is None:
            self.queue = asyncio.Queue(FALLBACK_QUEUE)
            self.writer = asyncio.create_task(self._write_queued(send))

    def deliver(self, seq: int, encoded: Encoded) -> None:
        """A published event: held back while pending, else written at once."""
        if self.pending is not None:
            self.pending.append((seq, encoded))
            return
        self.last_seq = seq
        self.write(encoded)

    def go_live(self, covered_seq: int) -> None:
        """Send the held-back events after ``covered_seq`` (what snapshot/replay covered)."""
        pending, self.pending = self.pending or [], None
        self.last_seq = max(self.last_seq, covered_seq)
        for seq, encoded in pending:
            if seq > self.last_seq:
                self.last_seq = seq
                self.write(encoded)

    def write(self, encoded: Encoded) -> None:
        if self.closing:
            return
        transport = self.transport
        if transport is not None:
            if transport.is_closing():
                return
            transport.write(encoded.raw)
            if transport.get_write_buffer_size() > MAX_BUFFER:
                self.close(TOO_SLOW)
            return
        assert self.queue is not None
        try:
            self.queue.put_nowait(encoded)
        except asyncio.QueueFull:
            self.close(TOO_SLOW)

    def ping(self) -> None:
        if self.transport is not None and not self.closing and not self.transport.is_closing():
            self.transport.write(PING_FRAME)

    def buffered(self) -> int:
        if self.transport is not None:
            return self.transport.get_write_buffer_size()
        return self.queue.qsize() if self.queue is not None else 0

    def close(self, code: int) -> None:
        """Send a close frame after what is already queued; abort if the peer never answers."""
        if self.closing:
            return
        self.closing = True
        self.hub.metrics.ws_closed.labels(str(code)).inc()
        if self.transport is not None:
            if not self.transport.is_closing():
                self.transport.write(close_frame(code))
                asyncio.get_running_loop().call_later(CLOSE_GRACE_S, self._abort)
            return
        assert self.queue is not None
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(code)

    def _abort(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    async def _write_queued(self, send: Send) -> None:
        """Fallback writer when the server's transport is out of reach: one ASGI send at a time."""
        assert self.queue is not None
        with contextlib.suppress(Exception):
            while True:
                item = await self.queue.get()
                if isinstance(item, int):
                    await send({"type": "websocket.close", "code": item})
                    return
                if item.text:
                    await send({"type": "websocket.send", "text": item.payload.decode()})
                else:
                    await send({"type": "websocket.send", "bytes": item.payload})

    def release(self) -> None:
        if self.writer is not None:
            self.writer.cancel()


@dataclass(frozen=True)
class RoomInfo:
    """A room as its connections need it, shared by every connection of the room."""

    room: Room
    brand_room: Room | None
    dealer: Dealer | None

    @property
    def brand_room_id(self) -> str:
        return self.room.brand_room_id or self.room.id


class RoomDirectory:
    """Rooms read from SQL at most every ``ttl_s`` per room: thousands of viewers joining one
    room cost one read, and share one copy in memory."""

    def __init__(self, db: Database, ttl_s: float = 2.0) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, RoomInfo | None]] = {}
        self._loading: dict[str, asyncio.Future[RoomInfo | None]] = {}

    async def get(self, room_id: str) -> RoomInfo | None:
        if len(room_id) > 64:
            return None
        hit = self._cache.get(room_id)
        if hit is not None and time.monotonic() - hit[0] < self.ttl_s:
            return hit[1]
        loading = self._loading.get(room_id)
        if loading is None:  # one read for everyone who asks while it runs (single flight)
            loading = asyncio.ensure_future(self._load(room_id))
            self._loading[room_id] = loading
            loading.add_done_callback(lambda _: self._loading.pop(room_id, None))
        return await asyncio.shield(loading)

    def forget_all(self) -> None:
        """A status changed somewhere: the next reads go to SQL."""
        self._cache.clear()

    async def _load(self, room_id: str) -> RoomInfo | None:
        now = time.monotonic()
        async with self.db.read() as session:
            room = await session.get(Room, room_id)
            info = None
            if room is not None:
                brand_room = None
                if room.kind == "dealer" and room.brand_room_id is not None:
                    brand_room = await session.get(Room, room.brand_room_id)
                dealer = await session.get(Dealer, room.dealer_id) if room.dealer_id else None
                info = RoomInfo(room, brand_room, dealer)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[room_id] = (now, info)
        return info


class RoomGroup:
    """The local connections of one brand room and its mirrors, per room and format."""

    def __init__(self, brand_room_id: str) -> None:
        self.brand_room_id = brand_room_id
        self.rooms: dict[str, dict[Format, set[Connection]]] = {}
        self.moderators: set[Connection] = set()
        self.ready = asyncio.Event()
        self.size = 0
        self.empty_since: float | None = None

    def add(self, conn: Connection) -> None:
        if conn.moderator:
            self.moderators.add(conn)
        else:
            by_format = self.rooms.setdefault(conn.room_id, {"json": set(), "msgpack": set()})
            by_format[conn.fmt].add(conn)
        self.size += 1
        self.empty_since = None

    def remove(self, conn: Connection) -> None:
        if conn.moderator:
            self.moderators.discard(conn)
        else:
            by_format = self.rooms.get(conn.room_id)
            if by_format is None or conn not in by_format[conn.fmt]:
                return
            by_format[conn.fmt].discard(conn)
            if not by_format["json"] and not by_format["msgpack"]:
                del self.rooms[conn.room_id]
        self.size -= 1
        if self.size == 0:
            self.empty_since = time.monotonic()

    def counts(self) -> dict[str, int]:
        counts = {room: len(f["json"]) + len(f["msgpack"]) for room, f in self.rooms.items()}
        if self.moderators:
            counts[self.brand_room_id] = counts.get(self.brand_room_id, 0) + len(self.moderators)
        return counts

    def deliver(self, event: PublishedEvent) -> int:
        """Write ``event`` to every local connection it reaches; returns how many."""
        sent = 0
        seq = event.seq
        if event.scope == "":
            targets = list(self.rooms.items())
        else:
            found = self.rooms.get(event.scope)
            targets = [(event.scope, found)] if found else []
        for room_id, by_format in targets:
            for fmt, conns in by_format.items():
                if conns:
                    encoded = event.encoded(fmt, room_id, False)
                    for conn in conns:
                        conn.deliver(seq, encoded)
                    sent += len(conns)
        for conn in self.moderators:
            if event.reaches(self.brand_room_id, True):
                conn.deliver(seq, event.encoded(conn.fmt, self.brand_room_id, True))
                sent += 1
        return sent


class Hub:
    """This process's connections and its single Redis pub/sub connection."""

    def __init__(self, redis: Redis, broker: Broker, metrics: Metrics, db: Database) -> None:
        self.redis = redis
        self.directory = RoomDirectory(db)
        self.broker = broker
        self.metrics = metrics
        self.chat = ChatStore(redis)
        self.cards = CardStore(redis)
        self.presence = Presence(redis, broker, self.local_counts)
        self.groups: dict[str, RoomGroup] = {}
        self.connections: set[Connection] = set()
        self.closing = False
        self._pubsub: PubSub = redis.pubsub()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        redact_tokens_in_server_logs()
        self.presence.start()
        self._tasks = [
            asyncio.create_task(self._read(), name="lc-hub-read"),
            asyncio.create_task(self._sweep(), name="lc-hub-sweep"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.presence.stop()
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()

    # connections ------------------------------------------------------------------------------

    async def join(self, conn: Connection) -> None:
        """Register ``conn`` (pending) and make sure its brand room's channel is subscribed."""
        group = self.groups.get(conn.brand_room_id)
        if group is None:
            group = self.groups[conn.brand_room_id] = RoomGroup(conn.brand_room_id)
            await self._pubsub.subscribe(channel(conn.brand_room_id))
        group.add(conn)
        self.connections.add(conn)
        self.metrics.ws_connections.inc()
        await asyncio.wait_for(group.ready.wait(), timeout=10)

    def leave(self, conn: Connection) -> None:
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        self.metrics.ws_connections.dec()
        conn.release()
        group = self.groups.get(conn.brand_room_id)
        if group is not None:
            group.remove(conn)

    def local_counts(self) -> dict[str, dict[str, int]]:
        return {b: g.counts() for b, g in self.groups.items() if g.size}

    async def close_all(self, code: int = GOING_AWAY, wait_s: float = 2.0) -> None:
        """Close every connection (shutdown): new ones are refused, then wait for the peers."""
        self.closing = True
        for conn in list(self.connections):
            conn.close(code)
        deadline = time.monotonic() + wait_s
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    # fan-out ----------------------------------------------------------------------------------

    async def _read(self) -> None:
        while True:
            if not self._pubsub.subscribed:
                await asyncio.sleep(0.05)
                continue
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pub/sub read failed; retrying")
                await asyncio.sleep(0.5)
                continue
            if message is not None:
                self._on_pubsub(message)

    def _on_pubsub(self, message: dict[str, Any]) -> None:
        name = message.get("channel", b"")
        name = name.decode() if isinstance(name, bytes) else str(name)
        brand_room_id = name.split("{room:", 1)[-1].split("}", 1)[0]
        group = self.groups.get(brand_room_id)
        if group is None:
            return
        if message["type"] == "subscribe":
            self.directory.forget_all()  # status events were not seen here until now
            group.ready.set()
        elif message["type"] == "message":
            try:
                parsed = Message.parse(message["data"])
                event = PublishedEvent(parsed.seq, parsed.ts, parsed.scope, parsed.body)
            except (ValueError, TypeError):
                log.warning("dropping a malformed event on %s", name)
                return
            if parsed.body.startswith('{"type":"status"'):
                self.directory.forget_all()
            self.metrics.fanout_frames.inc(group.deliver(event))

    # housekeeping -----------------------------------------------------------------------------

    async def _sweep(self) -> None:
        last_ping = time.monotonic()
        while True:
            await asyncio.sleep(SWEEP_EVERY_S)
            now = time.monotonic()
            ping = now - last_ping >= PING_EVERY_S
            if ping:
                last_ping = now
            for conn in list(self.connections):
                self._check_backlog(conn, now)
                if ping:
                    conn.ping()
            for brand_room_id, group in list(self.groups.items()):
                if group.empty_since is not None and now - group.empty_since > IDLE_GROUP_S:
                    del self.groups[brand_room_id]
                    try:
                        await self._pubsub.unsubscribe(channel(brand_room_id))
                    except Exception:
                        log.exception("unsubscribe failed")

    @staticmethod
    def _check_backlog(conn: Connection, now: float) -> None:
        if conn.closing:
            return
        size = conn.buffered()
        if size > MAX_BUFFER:
            conn.close(TOO_SLOW)
        elif size == 0:
            conn.backlog_since = None
        elif conn.backlog_since is None:
            conn.backlog_since = now
        elif now - conn.backlog_since > DRAIN_TIMEOUT_S:
            conn.close(TOO_SLOW)
