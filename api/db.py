"""Database engines and transactions: SQLite embedded by default, PostgreSQL in production."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.util.concurrency import await_

__all__ = ["Database", "SharedReads", "async_url", "ensure_sqlite_directory", "sync_url"]

_WRITE = "entitle_write"
# When the statement running on a connection started (monotonic seconds), for SQLite's statement timeout.
_STARTED = "entitle_statement_started"
# SQLite calls the progress handler every this many virtual-machine instructions (about a millisecond).
_PROGRESS_STEPS = 10_000


def async_url(url: str | URL) -> URL:
    """The driver Entitle runs on: aiosqlite for SQLite, psycopg 3 (async) for PostgreSQL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if parsed.get_backend_name() == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    raise ValueError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql")


def sync_url(url: str | URL) -> URL:
    """The same database through a blocking driver, for Alembic."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite+pysqlite")
    return parsed.set(drivername="postgresql+psycopg")


def ensure_sqlite_directory(url: str | URL) -> None:
    """An embedded database file may live in a folder that does not exist yet (var/ on a fresh clone)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def _prepare_sqlite(engine: AsyncEngine, url: URL, statement_timeout: float | None) -> None:
    ensure_sqlite_directory(url)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, record):  # type: ignore[no-untyped-def]
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        if statement_timeout is not None:
            info = record.info

            def interrupt_when_over_budget() -> int:
                # Runs in the connection's thread; a true answer makes the statement fail as "interrupted".
                started = info.get(_STARTED)
                return int(started is not None and time.monotonic() - started > statement_timeout)

            await_(dbapi_connection.driver_connection.set_progress_handler(interrupt_when_over_budget, _PROGRESS_STEPS))

    if statement_timeout is not None:

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _statement_starts(conn, _cursor, _statement, _parameters, _context, _many):  # type: ignore[no-untyped-def]
            conn.info[_STARTED] = time.monotonic()

        @event.listens_for(engine.sync_engine, "after_cursor_execute")
        def _statement_ends(conn, _cursor, _statement, _parameters, _context, _many):  # type: ignore[no-untyped-def]
            conn.info.pop(_STARTED, None)

        @event.listens_for(engine.sync_engine, "handle_error")
        def _statement_failed(context):  # type: ignore[no-untyped-def]
            if context.connection is not None:
                context.connection.info.pop(_STARTED, None)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection):  # type: ignore[no-untyped-def]
        # A transaction that will write takes the write lock up front, so concurrent writers
        # queue on busy_timeout instead of failing with "database is locked" on upgrade.
        if connection.get_execution_options().get(_WRITE):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


class Database:
    """One engine per process; `read()` and `write()` each open one transaction.

    `statement_timeout` (seconds) stops any one statement that runs longer: PostgreSQL's statement_timeout on
    every connection; on SQLite a progress handler that interrupts the statement. The web process sets it, so
    no request holds a connection for long; the worker and the command line do not."""

    def __init__(
        self, url: str | URL, *, echo: bool = False, pool_size: int = 10, statement_timeout: float | None = None
    ):
        self.url = async_url(url)
        self.dialect = self.url.get_backend_name()
        self.statement_timeout = statement_timeout
        if self.dialect == "sqlite":
            # Opening an aiosqlite connection (a thread and its pragmas) costs ~10 ms: keep them pooled.
            self.engine = create_async_engine(
                self.url, echo=echo, pool_size=pool_size, max_overflow=pool_size * 3, connect_args={"timeout": 30}
            )
            _prepare_sqlite(self.engine, self.url, statement_timeout)
        else:
            # Added to any options the URL already gives the server (`?options=...`). JIT compilation is off:
            # it costs 50-180 ms a statement to plan the monthly batch's aggregates and gains nothing on reads
            # this short (measured on the generated 10,000-customer set).
            options = ["-c jit=off"]
            if statement_timeout is not None:
                options.append(f"-c statement_timeout={max(1, round(statement_timeout * 1000))}")
            given = self.url.query.get("options")
            given = " ".join(given) if isinstance(given, tuple) else given
            connect_args = {"options": " ".join([given, *options] if given else options)}
            self.engine = create_async_engine(
                self.url, echo=echo, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True,
                connect_args=connect_args,
            )
        self._reader = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._writer = async_sessionmaker(
            self.engine.execution_options(**{_WRITE: True}), expire_on_commit=False, autoflush=False
        )
        # SQLite admits one writer at a time. Queueing this process's writers on a lock is fair and
        # cheap; BEGIN IMMEDIATE with busy_timeout still orders writers from other processes.
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None

    @property
    def sync_url(self) -> URL:
        return sync_url(self.url)

    def read(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A read transaction: the one the request shares (see `shared_reads`), else one of its own."""
        shared = _SHARED.get()
        if shared is not None and shared.db is self:
            return shared.read()
        return self.own_read()

    @asynccontextmanager
    async def own_read(self) -> AsyncIterator[AsyncSession]:
        async with self._reader() as session, session.begin():
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One transaction: committed when the block ends, rolled back whole on any exception."""
        if self._write_lock is None:
            async with self._writer() as session, session.begin():
                yield session
        else:
            async with self._write_lock, self._writer() as session, session.begin():
                yield session
        shared = _SHARED.get()
        if shared is not None and shared.db is self:
            shared.written()

    @asynccontextmanager
    async def shared_reads(self) -> AsyncIterator[SharedReads]:
        """Within the block (a request), every `read()` shares one transaction and its connection."""
        shared = SharedReads(self)
        token = _SHARED.set(shared)
        try:
            yield shared
        finally:
            _SHARED.reset(token)
            await shared.close()

    async def dispose(self) -> None:
        await self.engine.dispose()


class SharedReads:
    """One read transaction for every read of a request: one connection from the pool, one BEGIN, and one
    snapshot on SQLite (PostgreSQL reads committed data statement by statement, as before). Reads of
    concurrent fields take turns on it; a read inside a read of the same task joins the outer one.

    A write commits in a transaction of its own; the next read then begins a new transaction, so it sees what
    was written. A database error ends the shared transaction (a PostgreSQL transaction is unusable after
    one), and so does a cancelled read. Reads after the request ended (a field finishing after its answer was
    dropped) get transactions of their own."""

    def __init__(self, db: Database):
        self.db = db
        self._lock = asyncio.Lock()
        self._session: AsyncSession | None = None
        self._holder: asyncio.Task[object] | None = None
        self._stale = False
        self._closed = False
        self.transactions = 0  # how many it began: one for a request that only reads

    def written(self) -> None:
        self._stale = True

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        task = asyncio.current_task()
        if self._session is not None and self._holder is task:
            yield self._session
            return
        async with self._lock:
            if self._closed:
                async with self.db.own_read() as session:
                    yield session
                return
            if self._session is not None and self._stale:
                await self._end()
            if self._session is None:
                session = self.db._reader()
                await session.begin()
                self._session, self._stale = session, False
                self.transactions += 1
            self._holder = task
            try:
                yield self._session
            except (SQLAlchemyError, OSError, asyncio.CancelledError):
                await self._end()
                raise
            finally:
                self._holder = None

    async def _end(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()  # rolls back: it only read

    async def close(self) -> None:
        async with self._lock:  # after any read still running
            self._closed = True
            await self._end()


_SHARED: ContextVar[SharedReads | None] = ContextVar("entitle_shared_reads", default=None)
