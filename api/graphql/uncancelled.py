"""Resolvers run to their end even when graphql-core gives up on their answer.

When a non-null field fails, graphql-core cancels the sibling fields still running (`gather_with_cancel`). A
cancelled resolver may be inside a database statement: cut off there, SQLAlchemy cannot reset the connection
(SQLite logs "Exception during reset", PostgreSQL keeps the connection checked out until garbage collection).
So every resolver of our own that is a coroutine runs as a task of its own, and graphql-core awaits a shield
of it: cancelling the shield drops the answer, while the task finishes its statement and closes its session.
Its work is bounded like any statement's (the database statement timeout); its result, or error, is dropped.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from graphql import GraphQLObjectType, GraphQLSchema

__all__ = ["finish_even_if_cancelled", "run_resolvers_to_the_end"]

# Tasks whose answer nobody may await any more: held here until they end, so they are not collected mid-way.
_unawaited: set[asyncio.Future[Any]] = set()


def _settled(task: asyncio.Future[Any]) -> None:
    _unawaited.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: whoever still awaited the shield has it; nobody else wants it


def finish_even_if_cancelled(work: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
    task = asyncio.ensure_future(work)
    _unawaited.add(task)
    task.add_done_callback(_settled)
    return asyncio.shield(task)


def _shielded(resolve: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., asyncio.Future[Any]]:
    @functools.wraps(resolve)
    def resolver(source: Any, info: Any, **arguments: Any) -> asyncio.Future[Any]:
        return finish_even_if_cancelled(resolve(source, info, **arguments))

    return resolver


def run_resolvers_to_the_end(schema: GraphQLSchema) -> None:
    """Wraps, once, every coroutine resolver of the schema's object types; plain attribute fields keep
    graphql-core's default resolver and cost nothing more."""
    for named in schema.type_map.values():
        if not isinstance(named, GraphQLObjectType) or named.name.startswith("__"):
            continue
        for field in named.fields.values():
            if field.resolve is not None and inspect.iscoroutinefunction(field.resolve):
                field.resolve = _shielded(field.resolve)
