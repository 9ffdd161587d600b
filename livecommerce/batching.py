"""Micro-batching of a Lua script: every call that arrives in the same event-loop tick goes to
Redis in one round trip (one pipeline; concurrent calls on a cluster)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from livecommerce.redisconn import evalsha_many

MAX_BATCH = 512


class ScriptBatcher:
    """Runs a script for every caller that arrives in the same event-loop tick (up to
    ``MAX_BATCH``) in one pipelined round trip, and routes each reply to its caller."""

    def __init__(self, redis: Redis, script: AsyncScript) -> None:
        self.redis = redis
        self.script = script
        self._queue: list[tuple[Sequence[str], Sequence[str | int], asyncio.Future[Any]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(self, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((keys, args, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            task = asyncio.create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(
        self, batch: list[tuple[Sequence[str], Sequence[str | int], asyncio.Future[Any]]]
    ) -> None:
        try:
            results = await self._execute(batch)
        except Exception as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _execute(
        self, batch: list[tuple[Sequence[str], Sequence[str | int], asyncio.Future[Any]]]
    ) -> list[Any]:
        for attempt in range(2):
            calls = [(keys, args) for keys, args, _ in batch]
            results = await evalsha_many(self.redis, self.script.sha, calls)
            if attempt == 0 and any(isinstance(r, NoScriptError) for r in results):
                # Redis lost its script cache (restart): load it, run the whole batch again —
                # a NOSCRIPT reply means that script did not run.
                self.script.sha = await self.redis.script_load(self.script.script)
                if all(isinstance(r, NoScriptError) for r in results):
                    continue
                retry = [item for item, r in zip(batch, results, strict=True)
                         if isinstance(r, NoScriptError)]  # fmt: skip
                again = iter(await self._execute(retry))
                return [next(again) if isinstance(r, NoScriptError) else r for r in results]
            return results
        return results
