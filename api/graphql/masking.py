"""Errors never leak internals: an unexpected exception in a resolver answers a generic message with the
request id, in every mode, and its details go to the log with that id. Refusals of the service layer, and
what GraphQL itself says about a document or its variables, keep their messages."""

from __future__ import annotations

import logging
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors as StrawberryMaskErrors
from strawberry.types import ExecutionContext

from api.observability import current_request, exception_detail
from api.services.errors import DomainError

__all__ = ["EntitleSchema", "MaskErrors", "internal_error_message", "is_statement_timeout", "is_unexpected"]

log = logging.getLogger("entitle.graphql")


def _cause(error: GraphQLError) -> BaseException | None:
    """The exception behind a GraphQL error, through any GraphQL errors wrapping it."""
    original: BaseException | None = error.original_error
    while isinstance(original, GraphQLError) and original.original_error is not None:
        original = original.original_error
    return original


def is_unexpected(error: GraphQLError) -> bool:
    """An exception nobody meant to show: not a refusal, not GraphQL's word on the document or the variables
    (those are about the request, carry no path and point at the document)."""
    cause = _cause(error)
    if cause is None or isinstance(cause, (GraphQLError, DomainError)):
        return False
    return error.path is not None or not error.nodes


def is_statement_timeout(exc: BaseException | None) -> bool:
    """A statement stopped by the database timeout: PostgreSQL's statement_timeout, or SQLite's progress
    handler (which makes the statement fail as "interrupted")."""
    import sqlite3

    import psycopg

    for _ in range(10):  # the exception, the driver's error it wraps, and their causes
        if exc is None:
            return False
        if isinstance(exc, psycopg.errors.QueryCanceled):
            return True
        if isinstance(exc, sqlite3.OperationalError) and str(exc) == "interrupted":
            return True
        exc = getattr(exc, "orig", None) or exc.__cause__
    return False


def internal_error_message(request_id: str | None) -> str:
    quoted = f" (request id {request_id})" if request_id else ""
    return f"Internal server error{quoted}: the request could not be completed. Quote the request id when reporting it."


class MaskErrors(StrawberryMaskErrors):
    """Strawberry's MaskErrors, with the request id in the message and `extensions.code`; a statement the
    database timeout stopped says so. Development mode adds, for a client on this machine only, the
    exception's type (and its message, never a database's)."""

    def __init__(self, *, production: bool, statement_timeout_seconds: float | None = None) -> None:
        super().__init__(should_mask_error=is_unexpected)
        self.production = production
        self.statement_timeout_seconds = statement_timeout_seconds

    def mask(self, result: Any) -> None:
        """Masks a result produced outside the operation's extensions (an exception while parsing or
        validating ends the operation before this extension sees its result)."""
        self._process_result(result)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        scope = current_request()
        request_id = scope.request_id if scope else None
        cause = _cause(error)
        if is_statement_timeout(cause):
            limit = f" of {self.statement_timeout_seconds:g} s" if self.statement_timeout_seconds else ""
            message = (
                f"a database statement took longer than the statement timeout{limit} (ENTITLE_DB_STATEMENT_TIMEOUT) "
                "and was stopped; nothing it was writing was kept"
            )
            extensions: dict[str, Any] = {"code": "STATEMENT_TIMEOUT"}
            if self.statement_timeout_seconds:
                extensions["limit"] = self.statement_timeout_seconds
        else:
            message = internal_error_message(request_id)
            extensions = {"code": "INTERNAL_ERROR"}
        if request_id:
            extensions["requestId"] = request_id
        if not self.production and scope is not None and scope.local and cause is not None:
            extensions["exception"] = exception_detail(cause)
        return GraphQLError(
            message=message, nodes=error.nodes, source=error.source, positions=error.positions, path=error.path,
            original_error=None, extensions=extensions,
        )


class EntitleSchema(strawberry.Schema):
    """Logs each unexpected error once, as a structured line with the request id, the operation and the
    path, before MaskErrors replaces it; refusals and request errors are not errors of the server."""

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        operation = execution_context.operation_name if execution_context else None
        for error in errors:
            if not is_unexpected(error):
                continue
            cause = _cause(error)
            fields = {"operation": operation, "path": ".".join(str(p) for p in error.path or ())}
            if is_statement_timeout(cause):
                log.warning("database statement timeout in GraphQL operation", extra=fields)
                continue
            log.error(
                "unexpected error in GraphQL operation",
                exc_info=(type(cause), cause, cause.__traceback__) if cause is not None else None,
                extra=fields,
            )
