"""One WebSocket connection to a room: the handshake checks, hello and snapshot (or a replay
from ``since``), then the client's messages.

Close codes (design.md §5), sent after accepting so browsers can read them:

- 4401 missing or bad token
- 4403 not allowed (e.g. a dealer token in another dealer's room, a brand in another's room)
- 4404 unknown room
- 4400 bad query (a ``format`` other than ``json`` or ``msgpack``), after an ``error`` event
- 1008 ``Origin`` not allowed
- 1009 frame over 64 KiB (closed by the server's WebSocket layer, ``ws_max_size``)
- 4429 over ``WS_MESSAGES_PER_S`` messages a second (a flood)
- 4408 too slow: the send buffer passed 1 MiB or did not drain for 10 s (see ``hub``)
- 1001 server going away: reconnect with ``since``
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Annotated, Any, Literal, cast

import msgpack
from pydantic import Field
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketState

from livecommerce.auth import Principal
from livecommerce.broker import Message, room_tag
from livecommerce.context import AppContext, ctx
from livecommerce.errors import ApiError
from livecommerce.events import FORMATS, Encoded, Format, PublishedEvent, direct_event
from livecommerce.hub import GOING_AWAY, Connection, Hub
from livecommerce.ids import new_id
from livecommerce.models import Dealer, Room, Viewer
from livecommerce.origins import normalize_origin, own_origin
from livecommerce.routes.rooms import dealer_may_mirror
from livecommerce.timeutil import now_ms
from livecommerce.validation import ChatText, Id, Qty, RequestId, StrictBody, parse_json_bytes
from livecommerce.validation import validate as validate_model
from livecommerce.views import room_status

log = logging.getLogger("livecommerce.ws")

BAD_TOKEN = 4401
NOT_ALLOWED = 4403
UNKNOWN_ROOM = 4404
BAD_QUERY = 4400
ORIGIN_REFUSED = 1008
FLOOD = 4429


class ChatMessage(StrictBody):
    type: Literal["chat"]
    text: ChatText


class LikeMessage(StrictBody):
    type: Literal["like"]
    count: Annotated[int, Field(ge=1, le=100)]


class BuyMessage(StrictBody):
    type: Literal["buy"]
    seckill_id: Id
    qty: Qty
    request_id: RequestId


class TokenBucket:
    """``rate`` per second with a burst of ``rate``."""

    __slots__ = ("rate", "stamp", "tokens")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.stamp = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class ClientError(Exception):
    def __init__(self, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


def origin_allowed(websocket: WebSocket, app: AppContext, dealer: Dealer | None) -> bool:
    """No Origin (not a browser) or our own is fine; others only when configured or listed in
    the room's dealer's ``allowed_sites`` (design.md §5)."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    origin = normalize_origin(origin)
    own = {own_origin(websocket.url.scheme, websocket.headers.get("host"))}
    if app.settings.public_url:
        own.add(normalize_origin("/".join(app.settings.public_url.split("/")[:3])))
    if origin in own or origin in app.origins.configured:
        return True
    if dealer is None:
        return False
    sites = json.loads(dealer.allowed_sites or "[]")
    return origin in {normalize_origin(str(site)) for site in sites}


async def may_watch(app: AppContext, principal: Principal, room: Room) -> bool:
    if principal.role in ("viewer", "admin"):
        return True
    if principal.role == "brand":
        return room.brand_id == principal.id
    if room.kind == "dealer":
        return room.dealer_id == principal.id
    async with app.db.read() as session:
        return await dealer_may_mirror(session, principal.id, room.brand_id)


def parse_since(raw: str | None) -> int | None:
    if raw is None or not raw.isdigit() or len(raw) > 18:
        return None
    return int(raw)


class RoomSocket:
    """The server side of one connection, from admission to the last client message."""

    __slots__ = ("app", "brand_room", "chats", "conn", "hub", "messages", "principal", "room",
                 "websocket")  # fmt: skip

    def __init__(self, websocket: WebSocket, app: AppContext, hub: Hub) -> None:
        self.websocket = websocket
        self.app = app
        self.hub = hub
        self.principal: Principal | None = None
        self.room: Room | None = None
        self.brand_room: Room | None = None
        self.conn: Connection | None = None
        self.messages = TokenBucket(app.settings.ws_messages_per_s)
        self.chats = TokenBucket(app.settings.chat_rate_per_s)

    @property
    def brand_room_id(self) -> str:
        assert self.room is not None
        return self.room.brand_room_id or self.room.id

    async def refuse(self, code: int) -> None:
        self.app.metrics.ws_closed.labels(str(code)).inc()
        await self.websocket.close(code)

    async def admit(self, fmt: str) -> int | None:
        """Check format, room, origin, token and access; the close code when refused."""
        websocket = self.websocket
        if self.hub.closing:
            return GOING_AWAY
        if fmt not in FORMATS:
            error = direct_event("error", 0, now_ms(), error="invalid",
                                 message="format must be json or msgpack")  # fmt: skip
            await websocket.send_text(json.dumps(error))
            return BAD_QUERY
        info = await self.hub.directory.get(websocket.path_params["room_id"])
        if info is None:
            return UNKNOWN_ROOM
        if not origin_allowed(websocket, self.app, info.dealer):
            return ORIGIN_REFUSED
        principal = await self.app.auth.principal(websocket.query_params.get("token"))
        if principal is None:
            return BAD_TOKEN
        if not await may_watch(self.app, principal, info.room):
            return NOT_ALLOWED
        room, brand_room = info.room, info.brand_room
        self.principal, self.room, self.brand_room = principal, room, brand_room
        return None

    async def run(self) -> None:
        websocket = self.websocket
        await websocket.accept()
        fmt = websocket.query_params.get("format", "json")
        code = await self.admit(fmt)
        if code is not None:
            await self.refuse(code)
            return
        assert self.room is not None and self.principal is not None
        moderator = self.principal.role == "brand" and self.room.kind == "brand"
        raw_send = websocket.scope.get("lc.raw_send")
        transport = getattr(getattr(raw_send, "__self__", None), "transport", None)
        conn = Connection(self.hub, self.room.id, self.brand_room_id, moderator,
                          cast(Format, fmt), transport, raw_send or websocket.send)  # fmt: skip
        self.conn = conn
        try:
            await self.hub.join(conn)
            await self.greet(parse_since(websocket.query_params.get("since")))
            await self.serve_messages()
        finally:
            self.hub.leave(conn)

    # hello, snapshot, replay ------------------------------------------------------------------

    def send_direct(self, type_: str, **fields: Any) -> None:
        conn = self.conn
        assert conn is not None
        conn.write(Encoded.of(direct_event(type_, conn.last_seq, now_ms(), **fields), conn.fmt))

    async def greet(self, since: int | None) -> None:
        conn = self.conn
        assert conn is not None and self.room is not None and self.principal is not None
        viewer_id = self.principal.id if self.principal.role == "viewer" else None
        current = await self.app.broker.current_seq(self.brand_room_id)
        if since is not None and since <= current:
            conn.last_seq = since
            self.send_direct("hello", room_id=self.room.id, viewer_id=viewer_id,
                             server_time=now_ms())  # fmt: skip
            covered = await self.replay(since)
            if covered is not None:
                conn.go_live(covered)
                return
        conn.last_seq = current
        if since is None or since > current:
            self.send_direct("hello", room_id=self.room.id, viewer_id=viewer_id,
                             server_time=now_ms())  # fmt: skip
        self.send_direct("snapshot", **await self.snapshot())
        conn.go_live(current)

    async def snapshot(self) -> dict[str, Any]:
        room = self.room
        assert room is not None
        brand_room_id = self.brand_room_id
        seckills: list[dict[str, Any]] = []
        if self.app.seckills is not None:
            seckills = await self.app.seckills.room_seckills(brand_room_id, room.id)
        return {
            "room": {
                "id": room.id,
                "kind": room.kind,
                "title": room.title,
                "status": await self.current_status(),
                "brand_room_id": room.brand_room_id,
            },
            "cards": await self.hub.cards.pinned(brand_room_id),
            "seckills": seckills,
            "viewers": await self.hub.presence.viewers(brand_room_id, room.id),
            "chat": await self.hub.chat.recent(brand_room_id, room.id),
        }

    async def current_status(self) -> str:
        """From the room directory: its entries live ≤ 2 s and are dropped when a `status` event
        passes through this process (this connection's group is subscribed before this read)."""
        room = self.room
        assert room is not None
        info = await self.hub.directory.get(room.id)
        if info is None:
            return room_status(room, None)
        return room_status(info.room, info.brand_room)

    async def replay(self, since: int) -> int | None:
        """Write the events after ``since`` this connection would have received; the last seq
        covered, or None when the history no longer reaches back that far."""
        conn = self.conn
        assert conn is not None
        key = f"{room_tag(self.brand_room_id)}:history"
        first: list[Any] = list(await self.app.redis.xrange(key, count=1) or [])
        current = await self.app.broker.current_seq(self.brand_room_id)
        if since >= current:
            return since
        if not first or int(first[0][0].split(b"-")[0]) > since + 1:
            return None
        entries: list[Any] = list(
            await self.app.redis.xrange(key, min=f"{since + 1}-0", max="+") or []
        )
        hidden: dict[str, set[str]] = {}
        covered = since
        for _entry_id, fields in entries:
            parsed = Message.parse(fields[b"m"])
            event = PublishedEvent(parsed.seq, parsed.ts, parsed.scope, parsed.body)
            covered = event.seq
            if not event.reaches(conn.room_id, conn.moderator):
                continue
            chat = event.chat_ref()
            if chat is not None:
                if chat[0] not in hidden:
                    hidden[chat[0]] = await self.hub.chat.hidden(self.brand_room_id, chat[0])
                if chat[1] in hidden[chat[0]]:
                    continue
            conn.last_seq = event.seq
            conn.write(event.encoded(conn.fmt, conn.room_id, conn.moderator))
        return covered

    # client messages --------------------------------------------------------------------------

    async def serve_messages(self) -> None:
        conn = self.conn
        assert conn is not None
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if conn.closing:
                continue
            if not self.messages.allow():
                conn.close(FLOOD)
                continue
            try:
                await self.handle(self.decode(message))
            except ClientError as exc:
                fields: dict[str, Any] = {"error": exc.code, "message": exc.message}
                if exc.request_id is not None:
                    fields["request_id"] = exc.request_id
                self.send_direct("error", **fields)

    def decode(self, message: Mapping[str, Any]) -> dict[str, Any]:
        text = message.get("text")
        try:
            if text is not None:
                data = parse_json_bytes(text.encode())
            elif self.conn is not None and self.conn.fmt == "msgpack":
                data = msgpack.unpackb(message.get("bytes") or b"", raw=False, strict_map_key=True)
            else:
                raise ClientError("invalid", "binary frames need format=msgpack")
        except ApiError as exc:
            raise ClientError("invalid", exc.message) from None
        except (ValueError, TypeError, msgpack.UnpackException):
            raise ClientError("invalid", "not a valid msgpack message") from None
        if not isinstance(data, dict):
            raise ClientError("invalid", "a message is an object with a type")
        return data

    async def handle(self, data: dict[str, Any]) -> None:
        request_id = data.get("request_id")
        if not isinstance(request_id, str) or not 1 <= len(request_id) <= 64:
            request_id = None
        kind = data.get("type")
        try:
            if kind == "chat":
                await self.chat(validate_model(ChatMessage, data))
            elif kind == "like":
                like = validate_model(LikeMessage, data)
                self.hub.presence.add_likes(self.brand_room_id, self.room_id, like.count)
            elif kind == "buy":
                await self.buy(validate_model(BuyMessage, data), data)
            elif kind != "ping":
                raise ClientError("invalid", "type must be chat, like, buy or ping")
        except ApiError as exc:
            raise ClientError(exc.code, exc.message, request_id) from None
        except ClientError as exc:
            exc.request_id = exc.request_id or request_id
            raise

    @property
    def room_id(self) -> str:
        assert self.room is not None
        return self.room.id

    async def chat(self, message: ChatMessage) -> None:
        principal, conn = self.principal, self.conn
        assert principal is not None and conn is not None
        if principal.role != "viewer":
            raise ClientError("forbidden", "chat needs a viewer token")
        if not self.chats.allow():
            raise ClientError("rate_limited", "too many chat messages; slow down")
        if await self.hub.chat.is_muted(self.brand_room_id, self.room_id, principal.id):
            raise ClientError("muted", "you are muted in this room")
        if conn.viewer_name is None:
            async with self.app.db.read() as session:
                viewer = await session.get(Viewer, principal.id)
            conn.viewer_name = (viewer.name if viewer else None) or "viewer"
        line = {"id": new_id(), "room_id": self.room_id, "viewer_id": principal.id,
                "name": conn.viewer_name, "text": message.text}  # fmt: skip
        await self.hub.chat.add(self.brand_room_id, self.room_id, {**line, "ts": now_ms()})
        await self.app.broker.publish_one(
            self.brand_room_id, {"type": "chat", **line}, self.room_id
        )

    async def buy(self, message: BuyMessage, data: dict[str, Any]) -> None:
        principal, conn, room = self.principal, self.conn, self.room
        assert principal is not None and conn is not None and room is not None
        if principal.role != "viewer":
            raise ClientError("forbidden", "buying needs a viewer token")
        if self.app.seckills is None:
            raise ClientError("unavailable", "flash sales are not available")
        result = dict(await self.app.seckills.buy_from_ws(principal, room, data))
        result.pop("seq", None)
        result.pop("ts", None)
        type_ = str(result.pop("type", "order"))
        self.send_direct(type_, **result)


async def room_socket(websocket: WebSocket) -> None:
    app = ctx(websocket)
    if app.hub is None:
        await websocket.close(1011)
        return
    socket = RoomSocket(websocket, app, app.hub)
    try:
        await socket.run()
    except Exception:
        log.exception("websocket handler failed")
        if websocket.application_state == WebSocketState.CONNECTED and socket.conn is None:
            await websocket.close(1011)


routes = [WebSocketRoute("/ws/rooms/{room_id}", room_socket)]
