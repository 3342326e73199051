"""Running Alembic from code: upgrade a database to head, or list how the models differ from it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

try:
    import fcntl
except ImportError:  # not on Windows: there, processes must not migrate one SQLite file at once
    fcntl = None  # type: ignore[assignment]

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import make_url

from api.config import PROJECT_ROOT
from api.db import ensure_sqlite_directory, sync_url
from api.models import Base

__all__ = ["alembic_config", "model_differences", "upgrade"]


def alembic_config(database_url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Several processes may upgrade one database at once (web processes migrate as they start): they take
    turns, on PostgreSQL on an advisory lock (migrations/env.py), on an SQLite file on a lock file beside it."""
    ensure_sqlite_directory(database_url)
    with _sqlite_file_lock(database_url):
        command.upgrade(alembic_config(database_url), revision)


@contextmanager
def _sqlite_file_lock(database_url: str) -> Iterator[None]:
    parsed = make_url(database_url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:" or fcntl is None:
        yield
        return
    with open(f"{parsed.database}.migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def model_differences(database_url: str) -> list[Any]:
    """What autogenerate would write for this database: empty when migrations match the models."""
    engine = create_engine(sync_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
