"""A small WebSocket test client for the room socket: events decoded, waits with timeouts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import msgpack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

Event = dict[str, Any]


class RoomClient:
    """``async with RoomClient(url) as client:`` then ``await client.next("card")``."""

    def __init__(self, url: str, **connect_kwargs: Any) -> None:
        self.url = url
        self.connect_kwargs = connect_kwargs
        self.ws: ClientConnection | None = None
        self.raw: list[str | bytes] = []

    async def __aenter__(self) -> RoomClient:
        self.ws = await connect(self.url, open_timeout=10, max_size=None, **self.connect_kwargs)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.ws is not None
        await self.ws.close()

    async def recv(self, wait_s: float = 10) -> Event:
        assert self.ws is not None
        data = await asyncio.wait_for(self.ws.recv(), wait_s)
        self.raw.append(data)
        if isinstance(data, bytes):
            decoded: Event = msgpack.unpackb(data, raw=False)
            return decoded
        decoded = json.loads(data)
        return decoded

    async def next(
        self, type_: str, where: Callable[[Event], bool] = lambda e: True, wait_s: float = 10
    ) -> Event:
        """The next event of ``type_`` matching ``where`` (other events are skipped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            event = await self.recv(max(0.01, deadline - loop.time()))
            if event["type"] == type_ and where(event):
                return event

    async def send(self, message: Any) -> None:
        assert self.ws is not None
        await self.ws.send(message if isinstance(message, (str, bytes)) else json.dumps(message))

    async def closed_with(self, wait_s: float = 15) -> int | None:
        """Read until the server closes; the close code."""
        assert self.ws is not None
        try:
            async with asyncio.timeout(wait_s):
                while True:
                    await self.ws.recv()
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else None

    async def silent_for(self, seconds: float, type_: str) -> bool:
        """True when no event of ``type_`` arrives within ``seconds``."""
        try:
            await self.next(type_, wait_s=seconds)
        except TimeoutError:
            return True
        return False
