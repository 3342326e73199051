"""Probes for whatever runs the service: /healthz says the process answers (it touches nothing else);
/readyz says it can serve: the database answers and is at the migration revision this code expects."""

from __future__ import annotations

import asyncio
from functools import cache

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.db import Database

__all__ = ["code_revisions", "database_revisions", "healthz", "readiness", "readyz"]

# A readiness probe answers within this, whatever the database does.
READY_TIMEOUT_SECONDS = 5.0
_NO_STORE = {"Cache-Control": "no-store"}


@cache
def _scripts() -> ScriptDirectory:
    from api.migrate import alembic_config

    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def code_revisions() -> frozenset[str]:
    """The head revision(s) of the migrations shipped with this code."""
    return frozenset(_scripts().get_heads())


def _known(revision: str) -> bool:
    return any(script.revision == revision for script in _scripts().walk_revisions())


async def database_revisions(db: Database) -> frozenset[str]:
    async with db.engine.connect() as connection:
        heads = await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_heads())
    return frozenset(heads)


async def readiness(db: Database) -> tuple[bool, dict[str, object]]:
    """Whether the service can serve, and why not: the database is unreachable, or not at the code's revision."""
    expected = code_revisions()
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            found = await database_revisions(db)
    except TimeoutError:
        return False, {"reason": f"the database did not answer within {READY_TIMEOUT_SECONDS:g} s"}
    except Exception as exc:  # what is wrong is reported by kind only: no address, no credentials
        return False, {"reason": f"the database is unreachable ({type(exc).__name__})"}
    detail: dict[str, object] = {"database_revision": ", ".join(sorted(found)) or None,
                                 "code_revision": ", ".join(sorted(expected))}
    if found == expected:
        return True, detail
    if not found:
        detail["reason"] = "the database has no schema yet: run `entitle migrate`"
    elif not all(_known(revision) for revision in found):
        detail["reason"] = (
            f"the database is at revision {detail['database_revision']}, which this code does not know "
            "(was it migrated by a newer release?)"
        )
    else:
        detail["reason"] = (
            f"the database is at revision {detail['database_revision']}, this code expects "
            f"{detail['code_revision']}: run `entitle migrate`"
        )
    return False, detail


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"}, headers=_NO_STORE)


async def readyz(request: Request) -> JSONResponse:
    ready, detail = await readiness(request.app.state.context.db)
    return JSONResponse({"status": "ready" if ready else "unavailable", **detail}, 200 if ready else 503, headers=_NO_STORE)
