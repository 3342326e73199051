"""Scale out on one PostgreSQL: the read path with two web processes against one, and the monthly report
e-mails delivered by two workers at once, each report sent exactly once.

    .venv/bin/python bench/scale_out.py [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
                                        [--customers 200] [--seconds 5] [--rounds 3] [--concurrency 16]

A scratch database is created on the PostgreSQL server --database-url names, migrated, filled with
`entitle generate --customers N --seed 1 --now 2026-11-30T12:00:00+00:00`, and dropped at the end.

* Web: two `entitle serve` processes side by side, WEB_CONCURRENCY=1 and WEB_CONCURRENCY=2, every limit at
  its default, ENTITLE_ENV=production. This process is the load (bench/_load.py: --concurrency keep-alive
  connections on loopback, the next request sent as soon as an answer is in) posting "what is left this
  quarter" (the query of bench/http_read_path.py) as the customer token of the generated customer with the
  most contracts in force, --seconds per server after a 1 s warm-up, in rounds alternating 1 2 / 2 1;
  figures are the medians. On a 2-core machine that also runs the load, expect well under 2x.
* Worker: a month's reports queued with `entitle send-monthly-reports --month M`, then delivered by two
  `entitle worker --once --job deliver-outbox` processes started together (ENTITLE_MAIL_BATCH=--mail-batch,
  so their leases interleave), or by one alone, to a real SMTP server (aiosmtpd, tests/mailserver.py) in
  this process; July to October 2026 in turn, with 1, 2, 2 and 1 workers. Each delivery is timed from the
  first send begun to the last one recorded (the messages' own timestamps: process start left out). Every
  queued report must reach the server exactly once (by Message-ID: no duplicate, none missing) and be
  marked sent; each worker's own log line says how many it sent.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import psycopg  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench._load import (  # noqa: E402
    ENTITLE,
    ROOT,
    Request,
    clean_env,
    create_token,
    entitle,
    free_port,
    machine,
    run,
    scratch_database,
    serving,
    side_by_side,
)
from bench.http_read_path import QUERY  # noqa: E402
from tests.mailserver import Recorder, smtp_server  # noqa: E402

NOW = "2026-11-30T12:00:00+00:00"
# Each month's reports delivered by this many workers at once: 1 2 / 2 1.
DELIVERIES = (("2026-07", 1), ("2026-08", 2), ("2026-09", 2), ("2026-10", 1))


def _connect(url: str) -> psycopg.Connection:
    u = make_url(url)
    return psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database)


def _busiest_customer(url: str) -> tuple[str, int]:
    """The generated customer with the most contracts in force today: (code, contracts)."""
    with _connect(url) as conn:
        row = conn.execute(
            "SELECT c.code, count(*) FROM customers c JOIN contracts k ON k.customer_id = c.id "
            "WHERE k.effective_date <= %s AND k.end_date >= %s GROUP BY c.code ORDER BY count(*) DESC, c.code LIMIT 1",
            (NOW[:10], NOW[:10]),
        ).fetchone()
    assert row is not None, "no contract in force"
    return row[0], row[1]


def read_path(env: dict[str, str], args: argparse.Namespace) -> dict[str, float]:
    code, in_force = _busiest_customer(env["DATABASE_URL"])
    token = create_token(env, "--scope", "customer", "--customer", code, "--access", "read")
    request = Request("POST", "/graphql", {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                                           "Accept": "application/json"}, json.dumps({"query": QUERY}).encode())
    print(f"read path: customer {code} ({in_force} contracts in force), {args.rounds} rounds of {args.seconds:g} s, "
          f"{args.concurrency} keep-alive connections")
    ports = {"1 process": free_port(), "2 processes": free_port()}
    one = serving([*ENTITLE, "serve", "--port", str(ports["1 process"])], {**env, "WEB_CONCURRENCY": "1"},
                  ports["1 process"])
    two = serving([*ENTITLE, "serve", "--port", str(ports["2 processes"])], {**env, "WEB_CONCURRENCY": "2"},
                  ports["2 processes"])
    with one as url_one, two as url_two:
        figures = run(side_by_side({"1 process": (url_one, request), "2 processes": (url_two, request)},
                                   rounds=args.rounds, seconds=args.seconds, concurrency=args.concurrency))
    for label, rates in figures.items():
        print(f"  WEB_CONCURRENCY={label[0]}: " + "  ".join(f"{r:6.0f}" for r in rates) + " requests/s")
    return {label: statistics.median(rates) for label, rates in figures.items()}


def _queue(env: dict[str, str], month: str) -> set[str]:
    """Queue a month's reports; the Message-IDs of that month's queued report messages."""
    entitle(env, "send-monthly-reports", "--month", month)
    with _connect(env["DATABASE_URL"]) as conn:
        rows = conn.execute(
            "SELECT message_id FROM outbox_messages WHERE kind = 'monthly_report' AND dedupe_key LIKE %s",
            (f"report:%:{month}:monthly",),
        ).fetchall()
    return {row[0] for row in rows}


def _deliver(env: dict[str, str], workers: int) -> tuple[float, list[dict]]:
    """Run `workers` deliver-outbox workers at once; wall seconds and each one's delivery log line."""
    files = [tempfile.TemporaryFile("w+") for _ in range(workers)]
    started = time.perf_counter()
    processes = [subprocess.Popen([*ENTITLE, "worker", "--once", "--job", "deliver-outbox"], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=file) for file in files]
    for process in processes:
        process.wait(600)
    elapsed = time.perf_counter() - started
    logs = []
    for file in files:
        file.seek(0)
        logs.append(file.read())
        file.close()
    runs = []
    for process, log in zip(processes, logs, strict=True):
        if process.returncode != 0:
            raise RuntimeError(f"a worker failed ({process.returncode}):\n{log[-3000:]}")
        lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        (line,) = [entry for entry in lines if str(entry.get("message", "")).startswith("outbox delivery:")]
        runs.append(line)
    return elapsed, runs


def _sent(line: dict) -> int:
    return int(line["message"].split(" leased, ", 1)[1].split(" sent", 1)[0])


def worker_split(env: dict[str, str], args: argparse.Namespace) -> tuple[dict[int, list[float]], bool]:
    """Each month of DELIVERIES queued and delivered; messages per second by number of workers, and whether
    every report reached the server exactly once."""
    recorder = Recorder()
    with smtp_server(recorder) as (_, port):
        env = {**env, "ENTITLE_SMTP_HOST": "127.0.0.1", "ENTITLE_SMTP_PORT": str(port),
               "ENTITLE_SMTP_SECURITY": "none", "ENTITLE_MAIL_BATCH": str(args.mail_batch)}
        rates: dict[int, list[float]] = {1: [], 2: []}
        ok = True
        for month, workers in DELIVERIES:
            before = recorder.count()
            expected = _queue(env, month)
            elapsed, runs = _deliver(env, workers)
            received = Counter(r.message_id for r in recorder.received[before:])
            with _connect(env["DATABASE_URL"]) as conn:
                unsent, first, last = conn.execute(
                    "SELECT count(*) FILTER (WHERE status <> 'sent'), min(send_started_at), max(sent_at) "
                    "FROM outbox_messages WHERE kind = 'monthly_report' AND dedupe_key LIKE %s",
                    (f"report:%:{month}:monthly",),
                ).fetchone()
            sending = (last - first).total_seconds()  # from the first send begun to the last recorded
            duplicates = sum(n - 1 for n in received.values() if n > 1)
            missing = len(expected - set(received))
            strays = len(set(received) - expected)
            split = [_sent(line) for line in runs]
            verdict = "exactly once" if not (duplicates or missing or strays or unsent) else "WRONG"
            ok = ok and verdict == "exactly once"
            rates[workers].append(len(expected) / sending)
            print(f"  {month}: {len(expected)} reports, {workers} worker(s): sent in {sending:.1f} s "
                  f"({len(expected) / sending:,.0f}/s; {elapsed:.1f} s with the processes' start), by each "
                  f"{' + '.join(map(str, split))}; received {sum(received.values())}, {duplicates} duplicate(s), "
                  f"{missing} missing, {unsent} not marked sent: {verdict}")
    return rates, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="the PostgreSQL server to create the scratch database on (any database of it)")
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--mail-batch", type=int, default=10, help="ENTITLE_MAIL_BATCH of the workers")
    args = parser.parse_args()

    print(machine())
    with scratch_database(args.database_url, "scale_out") as url:
        env = clean_env(DATABASE_URL=url, ENTITLE_ENV="production", ENTITLE_REPORT_DAY="1")
        entitle(env, "migrate")
        started = time.perf_counter()
        entitle(env, "generate", "--customers", str(args.customers), "--seed", "1", "--now", NOW)
        print(f"database: PostgreSQL scratch database, {args.customers} generated customers "
              f"({time.perf_counter() - started:.0f} s to generate)")
        rates = read_path(env, args)
        ratio = rates["2 processes"] / rates["1 process"]
        print(f"median requests/s: WEB_CONCURRENCY=1 {rates['1 process']:,.0f}, WEB_CONCURRENCY=2 "
              f"{rates['2 processes']:,.0f}: ratio {ratio:.2f} (on {os.cpu_count()} CPUs, load included)")
        print(f"monthly reports over SMTP (ENTITLE_MAIL_BATCH={args.mail_batch}):")
        delivered, ok = worker_split(env, args)
        one, two = statistics.median(delivered[1]), statistics.median(delivered[2])
        print(f"delivery, median messages/s: 1 worker {one:,.0f}, 2 workers {two:,.0f}: ratio {two / one:.2f}")
        print(f"every report sent exactly once: {'yes' if ok else 'NO'}")
        print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
