"""Alembic environment: the URL comes from Entitle's settings (or the caller), blocking drivers."""

from alembic import context
from sqlalchemy import create_engine, pool

from api.config import get_settings
from api.db import sync_url
from api.models import Base
from api.models.base import UTCDateTime

config = context.config
target_metadata = Base.metadata
_MIGRATION_LOCK = 0x656E7469746C65  # "entitle": the advisory lock migrations hold on PostgreSQL


def _url() -> str:
    url = config.attributes.get("database_url") or get_settings().database_url
    return sync_url(url).render_as_string(hide_password=False)


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _render_item(type_, obj, autogen_context):  # type: ignore[no-untyped-def]
    # Migrations stay free of application imports: UTC instants are plain timezone-aware columns.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Several web processes may run `entitle migrate` as they start: one migrates, the others wait
            # here for it (the lock ends with the transaction), then find the schema current.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
