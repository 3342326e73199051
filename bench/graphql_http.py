"""GraphQL over HTTP with the parse and validation caches off (before) and on (after), side by side.

    .venv/bin/python bench/graphql_http.py [--seconds 5] [--rounds 3] [--concurrency 8]

Two `entitle serve` processes (one uvicorn worker each) run on one throw-away SQLite database with the
demo data: one with ENTITLE_GRAPHQL_CACHE_SIZE=0, one with the default cache. This process is the load:
--concurrency keep-alive connections on loopback posting one query as fast as they are answered for
--seconds, against each server in turn, for --rounds rounds (A B, B A, …); the figure is the median of the
rounds. The queries: `{ __typename }` (parse + validate + the HTTP and authentication path, nothing else)
and the README's "what is left this quarter" as Acme Retail's customer token (its first page of contracts).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
ENTITLE = [sys.executable, "-m", "api.cli"]  # this checkout's code, whatever is installed
QUERIES = {
    "{ __typename }": "{ __typename }",
    "what is left this quarter": """query {
  contracts {
    edges {
      node {
        reference
        customer { name }
        entitlements { bucket unit ledgerUnit periodStart periodEnd allowance consumed remaining expiresInDays }
      }
    }
  }
}""",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entitle(env: dict[str, str], *args: str) -> str:
    return subprocess.run([*ENTITLE, *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout


async def _wait_up(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            try:
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


async def _load(url: str, token: str, query: str, seconds: float, concurrency: int) -> float:
    """Requests per second answered with 200 and no errors."""
    done = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, headers={"Authorization": f"Bearer {token}"}) as client:

        async def one() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                response = await client.post("/graphql", json={"query": query})
                body = response.json()
                assert response.status_code == 200 and "errors" not in body, body
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp}/bench.db", "ENTITLE_OUTBOX_DIR": f"{tmp}/outbox"}
        _entitle(env, "migrate")
        _entitle(env, "demo")
        out = _entitle(env, "token", "create", "--name", "bench", "--scope", "customer", "--customer", "acme-retail",
                       "--access", "read")
        token = out.strip().rsplit(" ", 1)[-1]
        servers: dict[str, tuple[str, subprocess.Popen]] = {}
        for label, size in (("caches off", "0"), ("caches on", "256")):
            port = _free_port()
            process = subprocess.Popen(
                [*ENTITLE, "serve", "--port", str(port)],
                cwd=ROOT,
                env={**env, "ENTITLE_GRAPHQL_CACHE_SIZE": size},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            servers[label] = (f"http://127.0.0.1:{port}", process)
        try:
            for url, _ in servers.values():
                await _wait_up(url)
            figures: dict[tuple[str, str], list[float]] = {}
            for round_ in range(args.rounds):
                order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
                for name, query in QUERIES.items():
                    for label in order:
                        url = servers[label][0]
                        await _load(url, token, query, 1, args.concurrency)  # warm up
                        rate = await _load(url, token, query, args.seconds, args.concurrency)
                        figures.setdefault((name, label), []).append(rate)
            print(f"{args.rounds} rounds of {args.seconds:g} s, {args.concurrency} connections, median requests/s")
            print(f"{'query':<28}{'caches off':>12}{'caches on':>12}{'ratio':>8}")
            for name in QUERIES:
                off = statistics.median(figures[(name, "caches off")])
                on = statistics.median(figures[(name, "caches on")])
                print(f"{name:<28}{off:>12.0f}{on:>12.0f}{on / off:>7.2f}x")
        finally:
            for _, process in servers.values():
                process.terminate()
                process.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
