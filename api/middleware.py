"""ASGI middleware around the whole application: the request id (and the last word on unexpected errors), the
body size limit, which refuses a large body before anything parses it, and one read transaction per request."""

from __future__ import annotations

import html
import json
import logging

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.db import Database
from api.observability import (
    REQUEST_HEADER,
    exception_detail,
    is_local,
    new_request_id,
    request_scope,
    sane_request_id,
)

__all__ = ["BodyLimit", "ReadTransaction", "RequestContext"]

log = logging.getLogger("entitle.http")


class RequestContext:
    """Gives every request an id (a sane incoming X-Request-ID, else a new one), sets it for the log lines
    written while the request runs, and returns it in the X-Request-ID header of every response.

    An exception nothing else handled is logged here with that id, and answered 500 with a generic message
    naming the id; development mode adds the exception's type for a client on this machine."""

    def __init__(self, app: ASGIApp, *, production: bool = True):
        self.app = app
        self.production = production

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = sane_request_id(headers.get(REQUEST_HEADER)) or new_request_id()
        client = scope.get("client")
        local = is_local(client[0] if client else None)
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)[REQUEST_HEADER] = request_id
            await send(message)

        with request_scope(request_id, local=local):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                log.error(
                    "unexpected error", exc_info=True, extra={"method": scope.get("method"), "path": scope.get("path")}
                )
                if started:
                    raise
                detail = exception_detail(exc) if local and not self.production else None
                await _internal_error(request_id, headers, detail)(scope, receive, send_with_id)


class ReadTransaction:
    """Every read of one HTTP request shares one database transaction (api.db.SharedReads): one connection
    from the pool and one BEGIN however many services and loaders read, ended when the request ends."""

    def __init__(self, app: ASGIApp, *, db: Database):
        self.app = app
        self.db = db

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        async with self.db.shared_reads():
            await self.app(scope, receive, send)


def _internal_error(request_id: str, headers: Headers, detail: dict[str, str] | None):  # type: ignore[no-untyped-def]
    from starlette.responses import HTMLResponse, JSONResponse

    from api.graphql.masking import internal_error_message

    message = internal_error_message(request_id)
    no_store = {"Cache-Control": "no-store"}
    if "text/html" in headers.get("accept", "") and not headers.get("authorization"):
        extra = f"<p><code>{html.escape(json.dumps(detail))}</code></p>" if detail else ""
        page = (
            "<!doctype html><html lang=en><meta charset=utf-8><title>Internal server error</title>"
            f"<h1>Internal server error</h1><p>{html.escape(message)}</p>{extra}</html>"
        )
        return HTMLResponse(page, 500, headers=no_store)
    extensions: dict[str, object] = {"code": "INTERNAL_ERROR", "requestId": request_id}
    if detail:
        extensions["exception"] = detail
    return JSONResponse({"errors": [{"message": message, "extensions": extensions}]}, 500, headers=no_store)


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuses a request body larger than `max_bytes` with 413 and a JSON error naming the limit: at once when
    its Content-Length says so, else as soon as the bytes read pass the limit (a chunked body)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await _refusal(400, "BAD_REQUEST", "the Content-Length header is not a number")(scope, receive, send)
                return
            if int(declared) > self.max_bytes:
                await self._too_large(int(declared))(scope, receive, send)
                return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await self._too_large(None)(scope, receive, send)

    def _too_large(self, declared: int | None):  # type: ignore[no-untyped-def]
        size = f" ({declared:,} bytes)" if declared is not None else ""
        return _refusal(
            413, "BODY_TOO_LARGE",
            f"the request body{size} is larger than the limit of {self.max_bytes:,} bytes (ENTITLE_MAX_BODY_BYTES)",
        )


def _refusal(status: int, code: str, message: str):  # type: ignore[no-untyped-def]
    from starlette.responses import JSONResponse

    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]}, status, headers={"Cache-Control": "no-store"}
    )
