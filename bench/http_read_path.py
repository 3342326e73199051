"""HTTP read path: "what is left this quarter for one customer" three ways, in one server process.

    .venv/bin/python bench/http_read_path.py [--database-url URL] [--seconds 5] [--rounds 5] [--concurrency 8]
                                             [--profile N]

One uvicorn process (one worker, started as `entitle serve` starts it: bench/_serve.py) serves the application
with every limit at its default (cost, depth, aliases, tokens, body size, JSON depth, time budget, statement
timeout) and ENTITLE_ENV=production, plus two bench routes in front of it:

* static:  GET /bench/static, a constant JSON body of the same size: the HTTP, middleware and JSON floor;
* plain:   GET /bench/plain, the bearer token authenticated as /graphql does it, then the same service
           functions the resolvers call (contracts, customers by id, entitlements), answered as JSON of
           the same content as /graphql's;
* graphql: POST /graphql with the query below.

Data: the demo data (`entitle migrate`, `entitle demo`) in a throw-away SQLite file, or, with
--database-url naming a PostgreSQL server, in a scratch database created on it and dropped at the end. The
caller is Acme Retail's customer token (read access; the demo gives it four contracts). Before timing, plain
and graphql must answer the same JSON.

This process is the load, on loopback: --concurrency keep-alive connections, each sending the next request
as soon as the previous answer is in (a lean HTTP/1.1 client, bench/_load.py), for --seconds per route after
a 1 s warm-up, in rounds alternating static plain graphql / graphql plain static; figures are the medians.

Goals (issue 14): graphql >= 0.6 x plain, with every limit on; plain >= 0.15 x static.

--profile N then runs N /bench/plain and N /graphql requests in turn, one at a time, in this process (the
same application through httpx's ASGI transport), and prints where the time goes: wall and CPU time, SQL
statements, the time inside each service call and inside GraphQL execution; then each route under cProfile
(the functions with the most own time, and the GraphQL layer by cumulative time); then the cost of one bare
read transaction.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._load import (  # noqa: E402
    Request,
    clean_env,
    create_token,
    entitle,
    fetch,
    free_port,
    machine,
    run,
    scratch_database,
    serving,
    side_by_side,
)
from bench._serve import PLAIN, STATIC  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

QUERY = """query WhatIsLeft {
  contracts {
    edges {
      cursor
      node {
        reference
        customer { name }
        entitlements { bucket unit ledgerUnit periodStart periodEnd allowance consumed remaining expiresInDays }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""
GOALS = {"graphql/plain": 0.6, "plain/static": 0.15}


def requests(token: str) -> dict[str, Request]:
    auth = {"Authorization": f"Bearer {token}"}
    return {
        "static": Request("GET", STATIC, {}),
        "plain": Request("GET", PLAIN, auth),
        "graphql": Request("POST", "/graphql",
                           {**auth, "Content-Type": "application/json", "Accept": "application/json"},
                           json.dumps({"query": QUERY}).encode()),
    }


async def _same_answers(url: str, made: dict[str, Request]) -> int:
    """plain and graphql answer the same JSON; the size of graphql's answer."""
    answers = {}
    for label in ("plain", "graphql"):
        status, body = await fetch(url, made[label])
        assert status == 200, (label, status, body[:500])
        answers[label] = (json.loads(body), len(body))
    assert answers["plain"][0] == answers["graphql"][0], answers
    edges = answers["graphql"][0]["data"]["contracts"]["edges"]
    assert edges and all(e["node"]["entitlements"] for e in edges), answers["graphql"]
    return answers["graphql"][1]


async def measure(env: dict[str, str], token: str, args: argparse.Namespace) -> dict[str, float]:
    port = free_port()
    made = requests(token)
    with serving([sys.executable, "-m", "bench._serve", "--port", str(port), "--workers", "1"], env, port) as url:
        size = await _same_answers(url, made)
        _, static_body = await fetch(url, made["static"])
        print(f"answer sizes: graphql {size} bytes, plain the same JSON, static {len(static_body)} bytes")
        figures = await side_by_side({label: (url, r) for label, r in made.items()}, rounds=args.rounds,
                                     seconds=args.seconds, concurrency=args.concurrency)
    for label, rates in figures.items():
        print(f"  {label:8} " + "  ".join(f"{r:7.0f}" for r in rates))
    return {label: statistics.median(rates) for label, rates in figures.items()}


PHASES = (  # (module, function, label): the service calls both routes make, timed where they are called
    ("api.services.identity", "token_actor", "authenticate the token"),
    ("api.services.contracts", "page_contracts", "contracts page"),
    ("api.services.parties", "get_customers_by_ids", "customers by id"),
    ("api.services.contracts", "entitlements_for_contracts", "entitlements"),
)
EXECUTION = "GraphQL execution"


def _shorten(line: str) -> str:
    """A pstats line with its file named from its package (api/..., sqlalchemy/...)."""
    return re.sub(rf"\S*(site-packages|{re.escape(ROOT)}|lib/python3\.\d+)/", "", line)


def _print_stats(profiler: cProfile.Profile, order: str, count: int, *restrictions: object) -> None:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(*restrictions)
    lines = out.getvalue().splitlines()
    first = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    print("\n".join("    " + _shorten(line) for line in lines[first:] if line.strip()))


async def profile(env: dict[str, str], token: str, count: int) -> None:
    """Where the time of one request goes, plain and graphql, `count` requests each, one at a time, in this
    process (httpx's ASGI transport, no network): wall and CPU time, SQL statements, the wall time inside each
    service call and inside GraphQL execution; then, under cProfile, the functions with the most own time
    and, for graphql, the GraphQL layer's functions by cumulative time (a coroutine's figures there add up
    its steps between suspensions, so treat them as relative)."""
    import importlib

    import httpx
    from sqlalchemy import event, text

    os.environ.update({k: v for k, v in env.items() if k.startswith("ENTITLE_") or k == "DATABASE_URL"})
    from api.graphql.http import EntitleGraphQL
    from bench._serve import create_bench_app

    app = create_bench_app()
    spent: dict[str, float] = {}  # of the route being measured: seconds by phase, statements

    @event.listens_for(app.state.context.db.engine.sync_engine, "before_cursor_execute")
    def _count(*_args):  # type: ignore[no-untyped-def]
        spent["statements"] = spent.get("statements", 0) + 1

    active, since, executing = 0, 0.0, False  # service calls under way, since when; inside GraphQL execution

    def timing(original, label: str):  # type: ignore[no-untyped-def]
        async def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal active, since, executing
            started = time.perf_counter()
            service = label != EXECUTION
            if service:
                since, active = (started if active == 0 else since), active + 1
            else:
                executing = True
            try:
                return await original(*args, **kwargs)
            finally:
                ended = time.perf_counter()
                spent[label] = spent.get(label, 0.0) + ended - started
                if not service:
                    executing = False
                else:
                    active -= 1
                    if active == 0:
                        for union in ("service calls", *(["service calls in execution"] if executing else [])):
                            spent[union] = spent.get(union, 0.0) + ended - since
        return timed

    for module_name, name, label in PHASES:
        module = importlib.import_module(module_name)
        setattr(module, name, timing(getattr(module, name), label))
    EntitleGraphQL.execute_single = timing(EntitleGraphQL.execute_single, EXECUTION)  # type: ignore[method-assign]

    made = requests(token)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:

        async def one(label: str) -> None:
            r = made[label]
            response = await client.request(r.method, r.path, headers=r.headers, content=r.body or None)
            assert response.status_code == 200 and b'"errors"' not in response.content, response.text[:500]

        for _ in range(50):  # warm up: pooled connections, caches
            for label in ("plain", "graphql"):
                await one(label)
        # plain and graphql in turn, request by request, so that both see the same load from other processes
        measured: dict[str, dict[str, float]] = {"plain": {}, "graphql": {}}
        for _ in range(count):
            for label, into in measured.items():
                spent.clear()
                wall, cpu = time.perf_counter(), time.process_time()
                await one(label)
                spent["wall"], spent["cpu"] = time.perf_counter() - wall, time.process_time() - cpu
                for phase, value in spent.items():
                    into[phase] = into.get(phase, 0.0) + value
        for label, into in measured.items():
            ms = {phase: seconds / count * 1000 for phase, seconds in into.items()}
            wall = ms["wall"]
            print(f"\n--- {label}: {count} requests in process, one at a time (alternating with the other route): "
                  f"wall {wall:.2f} ms, CPU {ms['cpu']:.2f} ms (all threads), {into['statements'] / count:.1f} SQL "
                  "statements per request ---")
            for _, _, phase in PHASES:
                print(f"  {phase:28} {ms.get(phase, 0.0):6.2f} ms")
            services = ms.get("service calls", 0.0)
            print(f"  {'all service calls':28} {services:6.2f} ms (customers and entitlements run concurrently)")
            graphql_itself = 0.0
            if EXECUTION in ms:
                graphql_itself = ms[EXECUTION] - ms.get("service calls in execution", 0.0)
                print(f"  {EXECUTION:28} {ms[EXECUTION]:6.2f} ms (schema.execute: cached parse and validation, "
                      f"resolvers, dataloaders), of it {graphql_itself:.2f} ms outside service calls")
            print(f"  {'the rest':28} {wall - services - graphql_itself:6.2f} ms (HTTP, middleware, the request's "
                  f"read transaction, {'the GraphQL view: body, context, JSON' if EXECUTION in ms else 'JSON'})")
        plain, graphql = (measured[label]["wall"] for label in ("plain", "graphql"))
        print(f"\nin process, one request at a time: graphql/plain = {plain / graphql:.2f} (requests/s)")
        for label in measured:
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(count):
                await one(label)
            profiler.disable()
            print(f"\n--- {label} under cProfile, {count} requests: the most own time (seconds) ---")
            _print_stats(profiler, "tottime", count, 12)
            if label == "graphql":
                print("--- the GraphQL layer by cumulative time (seconds) ---")
                _print_stats(profiler, "cumulative", count, r"strawberry|graphql/|api/graphql", 18)
        db = app.state.context.db

        async def transaction() -> None:
            async with db.read() as session:
                await session.execute(text("SELECT 1"))

        for _ in range(50):
            await transaction()
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            await transaction()
        wall, cpu = (time.perf_counter() - wall) / count * 1000, (time.process_time() - cpu) / count * 1000
        print(f"\n--- the floor of a service call outside a request: one read transaction running SELECT 1: wall "
              f"{wall:.2f} ms, CPU {cpu:.2f} ms (all threads) ---")
    await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a PostgreSQL server to create the scratch database on "
                                               "(e.g. postgresql://postgres@127.0.0.1:5432/postgres); default SQLite")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="then profile N requests in process")
    args = parser.parse_args()

    print(machine())
    with scratch_database(args.database_url, "read_path") as url:
        env = clean_env(DATABASE_URL=url, ENTITLE_ENV="production")
        entitle(env, "migrate")
        entitle(env, "demo")
        token = create_token(env, "--scope", "customer", "--customer", "acme-retail", "--access", "read")
        backend = url.split(":", 1)[0]
        print(f"database: {backend}, demo data; caller: Acme Retail's customer token; one uvicorn worker; "
              f"{args.rounds} rounds of {args.seconds:g} s, {args.concurrency} keep-alive connections")
        rates = run(measure(env, token, args))
        print(f"\nmedian requests/s   static {rates['static']:,.0f}   plain {rates['plain']:,.0f}   "
              f"graphql {rates['graphql']:,.0f}")
        for name, goal in GOALS.items():
            top, bottom = name.split("/")
            ratio = rates[top] / rates[bottom]
            print(f"{name:14} {ratio:5.2f}  (goal >= {goal}: {'met' if ratio >= goal else 'NOT met'})")
        print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if args.profile:
            run(profile(env, token, args.profile))


if __name__ == "__main__":
    main()
