"""Operations: /healthz and /readyz (the database reachable and at the code's migration revision), graceful
shutdown that finishes in-flight requests and closes the database, `entitle serve` with WEB_CONCURRENCY worker
processes writing JSON log lines with the request id, and the settings' ranges."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.cli import serve_options
from api.config import PROJECT_ROOT, Settings
from api.db import Database
from api.health import _scripts, code_revisions
from api.migrate import upgrade
from api.models import TokenAccess, TokenScope
from api.services import identity, parties
from api.services.context import AppContext
from api.services.paging import Page
from tests.conftest import ADMIN, unique

CYCLE = (
    "{ bookings(first:100){ edges{ node{ contract{ bookings(first:100){ edges{ node{ contract{ "
    "bookings(first:100){ edges{ node{ id }}}}}}}}}}}}"
)


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- probes ----------------------------------------------------------------------------------------------


async def test_healthz_answers_without_the_database_and_readyz_says_it_is_unreachable(settings):
    unreachable = Database("postgresql://nobody@127.0.0.1:1/nothing")
    app = create_app(settings, database=unreachable)
    try:
        async with client_for(app) as http:
            health = await http.get("/healthz")
            assert health.status_code == 200
            assert health.json() == {"status": "ok"}
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json() == {"status": "unavailable", "reason": "the database is unreachable (OperationalError)"}
            assert ready.headers["cache-control"] == "no-store"
    finally:
        await unreachable.dispose()


async def test_readyz_on_a_database_at_the_codes_revision(anonymous_client):
    response = await anonymous_client.get("/readyz")
    assert response.status_code == 200
    [head] = code_revisions()
    assert response.json() == {"status": "ready", "database_revision": head, "code_revision": head}


async def test_readyz_refuses_a_database_behind_on_migrations(database_factory, settings):
    [head] = code_revisions()
    previous = _scripts().get_revision(head).down_revision
    url = database_factory.new()
    db = Database(url)
    app = create_app(replace(settings, database_url=url), database=db)
    try:
        async with client_for(app) as http:
            empty = await http.get("/readyz")
            assert empty.status_code == 503
            assert empty.json()["reason"] == "the database has no schema yet: run `entitle migrate`"
            await asyncio.to_thread(upgrade, url, previous)
            behind = await http.get("/readyz")
            assert behind.status_code == 503
            assert behind.json() == {
                "status": "unavailable",
                "database_revision": previous,
                "code_revision": head,
                "reason": f"the database is at revision {previous}, this code expects {head}: run `entitle migrate`",
            }
            await asyncio.to_thread(upgrade, url)
            assert (await http.get("/readyz")).status_code == 200
    finally:
        await db.dispose()


# ---- graceful shutdown -----------------------------------------------------------------------------------


async def test_a_stopping_server_finishes_its_in_flight_request_then_closes_the_database(
    settings, ctx, monkeypatch
):
    _, secret = await identity.create_token(
        ctx, ADMIN, identity.NewToken(unique("shutdown"), TokenScope.PROVIDER, TokenAccess.READ)
    )
    app = create_app(replace(settings, shutdown_timeout_seconds=10))  # its own database, closed at shutdown
    own_db: Database = app.state.context.db
    closed = asyncio.Event()
    real_dispose = Database.dispose

    async def dispose(self: Database) -> None:
        await real_dispose(self)
        if self is own_db:
            closed.set()

    entered = asyncio.Event()

    async def slow_customers(*args: Any, **kwargs: Any) -> Page[Any]:
        entered.set()
        await asyncio.sleep(1.0)
        return Page([], False, None)

    monkeypatch.setattr(Database, "dispose", dispose)
    monkeypatch.setattr(parties, "page_customers", slow_customers)
    options = {**serve_options(app.state.context.settings), "log_config": None}
    options.pop("workers")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **options))
    serving = asyncio.create_task(server.serve())
    for _ in range(100):
        if server.started:
            break
        await asyncio.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {secret}"}) as http:
        in_flight = asyncio.create_task(http.post("/graphql", json={"query": "{ customers { edges { node { code } } } }"}))
        await asyncio.wait_for(entered.wait(), 5)
        server.should_exit = True
        await asyncio.sleep(0.3)
        async with httpx.AsyncClient() as late:
            with pytest.raises(httpx.ConnectError):  # no new connections once stopping
                await late.get(f"{url}/healthz")
        assert not closed.is_set()  # the database stays open while a request is in flight
        response = await in_flight
    assert response.status_code == 200
    assert response.json() == {"data": {"customers": {"edges": []}}}
    await asyncio.wait_for(serving, 15)
    assert closed.is_set()


# ---- `entitle serve` -------------------------------------------------------------------------------------


def test_entitle_serve_runs_web_concurrency_workers_with_json_logs(database_factory, tmp_path):
    url = database_factory.new()
    upgrade(url)

    async def token() -> str:
        db = Database(url)
        try:
            ctx = AppContext(db=db, settings=Settings(database_url=url))
            await parties.create_customer(ctx, ADMIN, parties.NewCustomer(code=unique("served"), name="Served"))
            _, secret = await identity.create_token(
                ctx, ADMIN, identity.NewToken(unique("serve"), TokenScope.PROVIDER, TokenAccess.READ)
            )
            return secret
        finally:
            await db.dispose()

    secret = asyncio.run(token())
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENTITLE_") and k != "DATABASE_URL"}
    env.update(DATABASE_URL=url, WEB_CONCURRENCY="2", ENTITLE_SHUTDOWN_TIMEOUT="5",
               ENTITLE_OUTBOX_DIR=str(tmp_path / "outbox"), PYTHONUNBUFFERED="1")
    port = free_port()
    log_path = tmp_path / "serve.log"
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_ready(server, base, log_path)
            _wait_for_workers(2, server, log_path)
            ready = httpx.get(f"{base}/readyz", headers={"X-Request-ID": "serve-test-1"}, timeout=5)
            assert ready.status_code == 200 and ready.headers["x-request-id"] == "serve-test-1"
            refused, read = asyncio.run(_cycle_and_read(base, secret))
            assert refused["took"] < 1, refused
            assert refused["body"]["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
            assert read["status"] == 200 and "errors" not in read["body"], read
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
                pytest.fail(f"`entitle serve` did not stop within 30 s of SIGTERM:\n{log_path.read_text()}")
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    started = {line["message"] for line in lines if line["message"].startswith("Started server process")}
    assert len(started) == 2, lines  # two worker processes
    [access] = [line for line in lines if line.get("request_id") == "serve-test-1" and line["logger"] == "uvicorn.access"]
    assert access["logger"] == "uvicorn.access" and access["path"] == "/readyz" and access["status"] == 200
    assert sum(line["message"] == "Application shutdown complete." for line in lines) == 2
    assert server.returncode == 0


def _wait_until_ready(server: subprocess.Popen, base: str, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if server.poll() is not None:
            pytest.fail(f"`entitle serve` exited {server.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"`entitle serve` was not ready within 60 s:\n{log_path.read_text()}")
        time.sleep(0.2)


def _wait_for_workers(count: int, server: subprocess.Popen, log_path: Path) -> None:
    """Until every worker process has started (a slow one may still be importing after the first answers)."""
    deadline = time.monotonic() + 60
    while log_path.read_text().count("Application startup complete.") < count:
        if server.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"`entitle serve` did not start {count} workers:\n{log_path.read_text()}")
        time.sleep(0.2)


async def _cycle_and_read(base: str, secret: str) -> tuple[dict[str, Any], dict[str, Any]]:
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {secret}"}, timeout=30) as http:
        async def timed(query: str) -> dict[str, Any]:
            started = time.perf_counter()
            response = await http.post("/graphql", json={"query": query})
            return {"status": response.status_code, "body": response.json(), "took": time.perf_counter() - started}

        refused, read = await asyncio.gather(timed(CYCLE), timed("{ customers { edges { node { code name } } } }"))
    return refused, read


# ---- worker log lines -------------------------------------------------------------------------------------


async def test_each_worker_job_run_logs_under_an_id_of_its_own(ctx):
    import io
    import logging

    from api.jobs.worker import run_worker
    from api.observability import JsonFormatter, RequestIdFilter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("entitle.worker")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        await run_worker(ctx, once=True, only="reconcile-ledger")
        await run_worker(ctx, once=True, only="reconcile-ledger")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    ids = [line["request_id"] for line in lines if line["message"].startswith("ledger reconciliation")]
    assert len(ids) == 2 and len(set(ids)) == 2
    assert all(i.startswith("job-reconcile-ledger-") for i in ids)


# ---- settings --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("ENTITLE_GRAPHQL_MAX_COST", "0", "ENTITLE_GRAPHQL_MAX_COST must be 1 to 100000000, not 0"),
    ("ENTITLE_MAX_BODY_BYTES", "12", "ENTITLE_MAX_BODY_BYTES must be 1024 to 1073741824, not 12"),
    ("ENTITLE_MAX_JSON_DEPTH", "5000", "ENTITLE_MAX_JSON_DEPTH must be 4 to 200, not 5000"),
    ("ENTITLE_REQUEST_TIMEOUT", "0", "ENTITLE_REQUEST_TIMEOUT must be more than 0 and at most 3600 seconds, not 0"),
    ("ENTITLE_DB_STATEMENT_TIMEOUT", "soon", "ENTITLE_DB_STATEMENT_TIMEOUT must be a number, not 'soon'"),
    ("WEB_CONCURRENCY", "0", "WEB_CONCURRENCY must be 1 to 64, not 0"),
])
def test_a_limit_out_of_range_is_refused_with_its_variable(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError) as refused:
        Settings.from_env()
    assert str(refused.value) == message


def test_the_limits_are_read_from_the_environment(monkeypatch):
    for variable, value in {
        "ENTITLE_GRAPHQL_MAX_COST": "1234", "ENTITLE_GRAPHQL_LIST_SIZE": "7", "ENTITLE_GRAPHQL_MAX_TOKENS": "999",
        "ENTITLE_MAX_BODY_BYTES": "4096", "ENTITLE_MAX_JSON_DEPTH": "10", "ENTITLE_REQUEST_TIMEOUT": "2.5",
        "ENTITLE_DB_STATEMENT_TIMEOUT": "1.5", "WEB_CONCURRENCY": "3", "ENTITLE_SHUTDOWN_TIMEOUT": "12",
    }.items():
        monkeypatch.setenv(variable, value)
    settings = Settings.from_env()
    assert (settings.graphql_max_cost, settings.graphql_list_size, settings.graphql_max_tokens) == (1234, 7, 999)
    assert (settings.max_body_bytes, settings.max_json_depth) == (4096, 10)
    assert (settings.request_timeout_seconds, settings.statement_timeout_seconds) == (2.5, 1.5)
    assert (settings.web_concurrency, settings.shutdown_timeout_seconds) == (3, 12.0)
    assert serve_options(settings)["workers"] == 3
    assert serve_options(settings)["timeout_graceful_shutdown"] == 12.0


def test_serve_refuses_a_worker_count_out_of_range(capsys):
    from api.cli import main

    assert main(["serve", "--workers", "0"]) == 2
    assert "--workers must be 1 to 64, not 0" in capsys.readouterr().err
