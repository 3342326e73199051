"""Request ids and structured logs: every log line is one JSON object carrying the id of the request (or worker
job run) it belongs to, and every response says that id in its X-Request-ID header."""

from __future__ import annotations

import json
import logging
import logging.config
import re
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "REQUEST_HEADER",
    "JsonFormatter",
    "RequestIdFilter",
    "RequestScope",
    "configure_logging",
    "current_request",
    "exception_detail",
    "logging_config",
    "new_request_id",
    "request_scope",
    "sane_request_id",
]

REQUEST_HEADER = "X-Request-ID"
# An incoming id is kept only when it is short and plain, so it cannot forge log lines or headers.
_SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}")
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@dataclass(frozen=True)
class RequestScope:
    request_id: str
    # Whether the client is on this machine: development mode shows such a client an unexpected error's type.
    local: bool = False


_current: ContextVar[RequestScope | None] = ContextVar("entitle_request", default=None)


def current_request() -> RequestScope | None:
    return _current.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


def sane_request_id(value: str | None) -> str | None:
    return value if value is not None and _SANE_ID.fullmatch(value) else None


def is_local(host: str | None) -> bool:
    return host is not None and (host in _LOOPBACK or host.startswith("127."))


@contextmanager
def request_scope(request_id: str, *, local: bool = False) -> Iterator[RequestScope]:
    scope = RequestScope(request_id, local)
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)


def exception_detail(exc: BaseException) -> dict[str, str]:
    """What development mode may show a local client about an unexpected error: its type, and its message
    unless it comes from the database (whose messages carry SQL and bound values)."""
    detail = {"type": f"{type(exc).__module__}.{type(exc).__qualname__}"}
    if not _from_database(exc):
        detail["message"] = str(exc)[:500]
    return detail


def _from_database(exc: BaseException) -> bool:
    import sqlite3

    import psycopg
    from sqlalchemy.exc import SQLAlchemyError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (SQLAlchemyError, psycopg.Error, sqlite3.Error)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            scope = _current.get()
            record.request_id = scope.request_id if scope else None
        return True


# LogRecord's own attributes; anything else on a record came from `extra=` and is written as a field.
_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "request_id"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, any `extra` fields, and the
    exception (type, message, traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, version, status = record.args
            line.update(client=client, method=method, path=path, http_version=version, status=status)
        for name, value in vars(record).items():
            if name not in _RECORD_FIELDS and not name.startswith("_"):
                line[name] = value
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line["exception"] = {
                "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
                "message": str(exc),
                "traceback": "".join(traceback.format_exception(*record.exc_info)),
            }
        return json.dumps(line, default=str, ensure_ascii=False)


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A dictConfig: everything (uvicorn's error and access logs included) as JSON lines on stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "json",
                "filters": ["request_id"],
            },
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            **{name: {"handlers": [], "level": level, "propagate": True}
               for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
            # Alembic says which database kind it found at each readiness probe: not worth a line each time.
            "alembic": {"level": "WARNING"},
        },
    }


def configure_logging(level: str = "INFO") -> None:
    logging.config.dictConfig(logging_config(level))
