"""Engines and sessions. SQLite: WAL, and every write through one connection under one lock,
so concurrent writes queue instead of failing with "database is locked"."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from livecommerce import models  # noqa: F401  (registers the tables)
from livecommerce.settings import Settings

SQLITE_APPEND_ONLY = [
    """CREATE TRIGGER IF NOT EXISTS ledgerentry_no_update BEFORE UPDATE ON ledgerentry
       BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS ledgerentry_no_delete BEFORE DELETE ON ledgerentry
       BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END""",
]
POSTGRES_APPEND_ONLY = [
    """CREATE OR REPLACE FUNCTION livecommerce_append_only() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION 'ledger entries are append-only'; END; $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS ledgerentry_append_only ON ledgerentry",
    """CREATE TRIGGER ledgerentry_append_only BEFORE UPDATE OR DELETE ON ledgerentry
       FOR EACH ROW EXECUTE FUNCTION livecommerce_append_only()""",
]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=OFF")
    cursor.close()


def _sqlite_immediate(engine: AsyncEngine) -> None:
    """Make every transaction on ``engine`` BEGIN IMMEDIATE (take the write lock up front)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None
        _sqlite_pragmas(dbapi_connection, record)

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """Read sessions and serialized write sessions over one SQL database."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.sqlalchemy_url
        self.is_sqlite = settings.is_sqlite
        if self.is_sqlite:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            self.writer = create_async_engine(self.url, poolclass=NullPool)
            _sqlite_immediate(self.writer)
            self.reader = create_async_engine(self.url, pool_size=8, max_overflow=8)
            event.listen(self.reader.sync_engine, "connect", _sqlite_pragmas)
        else:
            self.writer = create_async_engine(self.url, pool_size=10, max_overflow=10)
            self.reader = self.writer
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._writer_sessions = async_sessionmaker(
            self.writer, class_=AsyncSession, expire_on_commit=False
        )
        self._reader_sessions = async_sessionmaker(
            self.reader, class_=AsyncSession, expire_on_commit=False
        )

    async def create_schema(self) -> None:
        async with self.writer.begin() as connection:
            await connection.run_sync(SQLModel.metadata.create_all)
            for statement in SQLITE_APPEND_ONLY if self.is_sqlite else POSTGRES_APPEND_ONLY:
                await connection.execute(text(statement))

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._reader_sessions() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction, committed on exit, rolled back on error."""
        if self._write_lock is None:
            async with self._writer_sessions() as session, session.begin():
                yield session
            return
        async with self._write_lock, self._writer_sessions() as session, session.begin():
            yield session

    async def ping(self) -> None:
        async with self.reader.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()
