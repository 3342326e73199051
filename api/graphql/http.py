"""/graphql over HTTP, as the GraphQL-over-HTTP specification says.

The response's media type follows the request's Accept header: `application/graphql-response+json` when the
client prefers it, else `application/json` (also for `*/*` or no Accept at all); a client accepting neither
gets 406. With `application/json` every well-formed request answers 200, as before. With
`application/graphql-response+json` a request that fails before execution (its document does not parse or
validate, a limit refuses it, its variables do not fit) answers 400 without `data`. A request that is not
well-formed (not JSON, wrong parameter types, JSON nested too deeply) answers 400 whatever the media type,
always with a JSON body of `errors`. Operations are sent with POST only (GET is refused earlier, with 405).

Each operation runs within the request's time budget (ENTITLE_REQUEST_TIMEOUT); one that overruns is
stopped, its open transaction rolled back, and the answer names the budget."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from cross_web import HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from api.graphql.context import Loaders, RequestContext
from api.graphql.limits import JsonTooDeep, check_json_depth
from api.graphql.masking import MaskErrors
from api.services.context import AppContext

__all__ = ["GRAPHQL_RESPONSE_JSON", "EntitleGraphQL", "negotiate"]

log = logging.getLogger("entitle.graphql")

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
_CONTENT_TYPES = {GRAPHQL_RESPONSE_JSON: f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8", JSON: JSON}


def negotiate(accept: str | None) -> str | None:
    """The response media type the Accept header prefers (highest q, first listed on a tie); None when it
    accepts neither. No Accept header means application/json, as it did before the specification."""
    if accept is None or not accept.strip():
        return JSON
    best, best_q = None, 0.0
    for part in accept.split(","):
        media, _, parameters = part.partition(";")
        media = media.strip().lower()
        q = 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media == GRAPHQL_RESPONSE_JSON:
            candidate = GRAPHQL_RESPONSE_JSON
        elif media in (JSON, "application/*", "*/*"):
            candidate = JSON
        else:
            continue
        if q > best_q:
            best, best_q = candidate, q
    return best


def error_response(status: int, code: str, message: str, media: str = JSON, **headers: str) -> Response:
    """A refusal before any GraphQL response exists: `errors` only, never `data`."""
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return Response(
        json.dumps(body), status, media_type=None,
        headers={"Content-Type": _CONTENT_TYPES[media], "Cache-Control": "no-store", **headers},
    )


class _Stopped(ExecutionResult):
    """An operation stopped by the time budget: it had started, so its answer keeps `data` (null)."""


def _is_request_error(result: ExecutionResult) -> bool:
    """Refused before execution: parsing, validation (the limits included) or the variables failed."""
    if isinstance(result, _Stopped):
        return False
    if isinstance(result, PreExecutionError):
        return True
    return result.data is None and bool(result.errors) and all(e.path is None for e in result.errors or ())


class EntitleGraphQL(GraphQL):
    def __init__(self, app: AppContext, schema: Any, **kwargs: Any):
        super().__init__(schema, **kwargs)
        self.app_context = app
        self.max_json_depth = app.settings.max_json_depth
        self.time_budget = app.settings.request_timeout_seconds
        self.masker = MaskErrors(
            production=app.settings.production, statement_timeout_seconds=app.settings.statement_timeout_seconds
        )

    async def get_context(self, request: Any, response: Any) -> RequestContext:  # type: ignore[override]
        actor = request.state.actor
        return RequestContext(
            app=self.app_context,
            actor=actor,
            loaders=Loaders(self.app_context, actor),
            base_url=str(request.base_url).rstrip("/"),
        )

    def decode_json(self, data: str | bytes) -> object:
        # Measured before parsing: the parser recurses once per level of nesting.
        try:
            check_json_depth(data, self.max_json_depth)
        except JsonTooDeep as exc:
            raise HTTPException(400, f"{exc} (ENTITLE_MAX_JSON_DEPTH)") from exc
        return json.loads(data)

    async def parse_http_body(self, request: Any) -> Any:
        data = await super().parse_http_body(request)
        if not isinstance(data, list) and not isinstance(data.operation_name, (str, type(None))):
            raise HTTPException(400, "The GraphQL operation's `operationName` must be a string or null, if provided.")
        return data

    async def execute_single(self, request: Any, request_adapter: Any, sub_response: Any, context: Any,  # type: ignore[override]
                             root_value: Any, request_data: Any) -> ExecutionResult:
        budget = asyncio.timeout(self.time_budget)
        try:
            async with budget:
                result = await self._execute(request_adapter, context, root_value, request_data)
            self.masker.mask(result)
            return result
        except TimeoutError:
            if not budget.expired():
                raise
        log.warning(
            "GraphQL operation stopped: it ran past the time budget",
            extra={"operation": request_data.operation_name, "budget_seconds": self.time_budget},
        )
        return _Stopped(data=None, errors=[GraphQLError(
            f"the request was stopped: it took longer than its time budget of {self.time_budget:g} s "
            "(ENTITLE_REQUEST_TIMEOUT)",
            extensions={"code": "TIME_BUDGET_EXCEEDED", "limit": self.time_budget},
        )])

    async def _execute(self, request_adapter: Any, context: Any, root_value: Any, request_data: Any) -> ExecutionResult:
        try:
            return await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=OperationType.from_http(request_adapter.method),
                operation_extensions=request_data.extensions,
            )
        except CannotGetOperationTypeError as exc:  # no such operation, or several and none named: a request error
            return PreExecutionError(data=None, errors=[GraphQLError(exc.as_http_error_reason())])
        except InvalidOperationTypeError as exc:
            raise HTTPException(400, exc.as_http_error_reason(request_adapter.method)) from exc
        except MissingQueryError as exc:
            raise HTTPException(400, "No GraphQL query found in the request") from exc

    async def process_result(self, request: Any, result: ExecutionResult) -> Any:
        response = await super().process_result(request, result)
        if request.state.graphql_media == GRAPHQL_RESPONSE_JSON and _is_request_error(result):
            response.pop("data", None)
            internal = any((e.extensions or {}).get("code") == "INTERNAL_ERROR" for e in result.errors or ())
            request.state.graphql_status = 500 if internal else 400
        return response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        media = negotiate(request.headers.get("accept"))
        if media is None:
            response = error_response(
                406, "NOT_ACCEPTABLE", f"the response is {GRAPHQL_RESPONSE_JSON} or {JSON}: accept one of them"
            )
        else:
            request.state.graphql_media = media
            try:
                response = await self.run(request)
            except HTTPException as exc:
                response = self._refusal(exc, media)
            else:
                status = getattr(request.state, "graphql_status", None)
                if status is not None:
                    response.status_code = status
                response.headers["content-type"] = _CONTENT_TYPES[media]
        await response(scope, receive, send)

    @staticmethod
    def _refusal(exc: HTTPException, media: str) -> Response:
        if exc.reason == "Unsupported content type":
            return error_response(415, "UNSUPPORTED_MEDIA_TYPE", f"send the operation as JSON (Content-Type: {JSON})", media)
        code = "METHOD_NOT_ALLOWED" if exc.status_code == 405 else "BAD_REQUEST"
        return error_response(exc.status_code, code, exc.reason, media)
