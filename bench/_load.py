"""Shared by the HTTP benchmarks: scratch databases, server processes, and a lean keep-alive HTTP load.

The load is a minimal HTTP/1.1 client on asyncio streams (uvloop when installed): each connection sends
one request, reads the status line, the headers and Content-Length bytes of body, and sends the next. It
spends a small fraction of the CPU httpx would per request, so on a 2-core machine the load process
leaves the server its core (and with two server processes, takes as little as it can of theirs).
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
ENTITLE = [sys.executable, "-m", "api.cli"]  # this checkout's code, whatever is installed
T = TypeVar("T")


def machine() -> str:
    """Date, host and load: printed by every benchmark beside its figures."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs ({platform.machine()}), "
            f"Python {platform.python_version()}, load average {load}")


def run(main: Awaitable[T]) -> T:
    """asyncio.run, on uvloop when it is installed (uvicorn serves on it too)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)  # type: ignore[arg-type]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any Entitle setting (every limit at its default), plus `extra`."""
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith("ENTITLE_") and k not in ("DATABASE_URL", "WEB_CONCURRENCY")}
    return {**keep, **extra}


def entitle(env: dict[str, str], *args: str) -> str:
    """Run an `entitle` command with this checkout's code; its standard output."""
    done = subprocess.run([*ENTITLE, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"entitle {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def create_token(env: dict[str, str], *args: str) -> str:
    """`entitle token create ...`: the secret it prints once."""
    return entitle(env, "token", "create", "--name", f"bench-{uuid.uuid4().hex[:6]}", *args).strip().rsplit(" ", 1)[-1]


@contextmanager
def scratch_database(server: str | None, label: str) -> Iterator[str]:
    """A throw-away database URL: a SQLite file without `server`, else a new database on that PostgreSQL
    server (any database of it, e.g. postgresql://postgres@127.0.0.1:5432/postgres), dropped at the end."""
    if server is None:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/{label}.db"
        return
    url = make_url(server)
    if url.get_backend_name() != "postgresql":
        raise SystemExit(f"--database-url must name a PostgreSQL server, not {server}")
    name = f"entitle_bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = dict(host=url.host, port=url.port, user=url.username, password=url.password, dbname=url.database,
                 autocommit=True)
    with psycopg.connect(**admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(**admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def serving(command: list[str], env: dict[str, str], port: int, timeout: float = 60) -> Iterator[str]:
    """Start a server process and wait until its /healthz answers; its base URL. Stopped (SIGTERM) at the end."""
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}:\n"
                                       f"{log.read()[-3000:].decode(errors='replace')}")
                try:
                    with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
                        if answer.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} did not come up within {timeout:g} s")
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass(frozen=True)
class Request:
    """One HTTP request, encoded once and sent again and again."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""

    def encode(self, host: str) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}",
                 *(f"{k}: {v}" for k, v in self.headers.items())]
        if self.body or self.method == "POST":
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    length = None
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
        elif name.strip().lower() == "transfer-encoding":
            raise RuntimeError("chunked answers are not supported by this load client")
    return status, await reader.readexactly(length or 0)


async def fetch(url: str, request: Request) -> tuple[int, bytes]:
    """One request on a fresh connection: (status, body)."""
    host = url.removeprefix("http://")
    name, _, port = host.partition(":")
    reader, writer = await asyncio.open_connection(name, int(port))
    try:
        writer.write(request.encode(host))
        return await _answer(reader)
    finally:
        writer.close()


def no_errors(body: bytes) -> bool:
    """A cheap check of every answer: a GraphQL body with `errors` is a failure."""
    return b'"errors"' not in body


async def load(url: str, request: Request, seconds: float, concurrency: int,
               check: Callable[[bytes], bool] = no_errors) -> float:
    """Answers per second: `concurrency` keep-alive connections each sending `request` as soon as the previous
    answer is in, for `seconds`. The connections are opened one at a time, each answered once before the next
    is opened, so that the processes of a multi-process server each accept a share of them (opened all at
    once, one process may accept nearly all). Any answer other than 200 or failing `check` stops the run."""
    host = url.removeprefix("http://")
    name, _, port = host.partition(":")
    payload = request.encode(host)

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(payload)
        status, body = await _answer(reader)
        if status != 200 or not check(body):
            raise RuntimeError(f"{request.method} {request.path} answered {status}: {body[:500]!r}")

    connections = []
    try:
        for _ in range(concurrency):
            connections.append(await asyncio.open_connection(name, int(port)))
            await exchange(*connections[-1])
        done = 0
        deadline = time.perf_counter() + seconds

        async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await exchange(reader, writer)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(connection(*c) for c in connections))
        return done / (time.perf_counter() - started)
    finally:
        for _, writer in connections:
            writer.close()


async def side_by_side(targets: dict[str, tuple[str, Request]], *, rounds: int, seconds: float, concurrency: int,
                       warmup: float = 1.0, check: Callable[[bytes], bool] = no_errors,
                       progress: Callable[[str], Any] | None = None) -> dict[str, list[float]]:
    """Each target (label: base URL and request) loaded in turn, A B C then C B A and so on, for `rounds`
    rounds, each after a short warm-up on the same connections' server; every round's answers per second."""
    figures: dict[str, list[float]] = {label: [] for label in targets}
    for round_ in range(rounds):
        order = list(targets) if round_ % 2 == 0 else list(reversed(targets))
        for label in order:
            url, request = targets[label]
            if warmup:
                await load(url, request, warmup, concurrency, check)
            figures[label].append(await load(url, request, seconds, concurrency, check))
            if progress is not None:
                progress(f"round {round_ + 1}/{rounds} {label}: {figures[label][-1]:,.0f}/s")
    return figures
