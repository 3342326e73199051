"""The ASGI application: GraphQL at /graphql and the portal, sharing one database and one clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from strawberry.asgi import GraphQL

from api.auth import request_actor
from api.config import Settings, get_settings
from api.db import Database
from api.graphql.context import Loaders, RequestContext
from api.graphql.schema import build_schema
from api.services.context import AppContext, Clock, SystemClock

__all__ = ["create_app"]


class EntitleGraphQL(GraphQL):
    def __init__(self, app: AppContext, **kwargs: Any):
        super().__init__(build_schema(app.settings), **kwargs)
        self.app_context = app

    async def get_context(self, request: Any, response: Any) -> RequestContext:  # type: ignore[override]
        actor = request_actor(request)
        return RequestContext(app=self.app_context, actor=actor, loaders=Loaders(self.app_context, actor))


def create_app(
    settings: Settings | None = None, *, database: Database | None = None, clock: Clock | None = None
) -> Starlette:
    from web.routes import exception_handlers, portal_routes, static_mount

    settings = settings or get_settings()
    db = database or Database(settings.database_url, echo=settings.sql_echo)
    context = AppContext(db=db, settings=settings, clock=clock or SystemClock())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if database is None:
            await db.dispose()

    async def health(request: Request) -> JSONResponse:
        async with db.read() as session:
            await session.execute(text("SELECT 1"))
        return JSONResponse({"status": "ok"})

    graphql = EntitleGraphQL(
        context,
        graphql_ide=None if settings.production else "graphiql",
        allow_queries_via_get=False,
    )
    app = Starlette(
        routes=[
            Route("/healthz", health),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            static_mount(),
            *portal_routes(),
        ],
        lifespan=lifespan,
        exception_handlers=exception_handlers(),
    )
    app.state.context = context
    return app
