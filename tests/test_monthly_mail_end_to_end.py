"""The monthly reports end to end, as they run in production: the demo loaded with the command line, two
`entitle worker` processes queueing the same month and draining the same outbox to a real SMTP server
(aiosmtpd), one of them killed with SIGKILL mid-batch and started again. Each reporting contract's report
arrives once (by Message-ID), multipart with the same figures as the report built in-process, addressed to
the report contacts or the managing partner, never to a managed customer."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import date

from sqlalchemy import create_engine, pool, select, text

from api.config import PROJECT_ROOT, Settings
from api.db import Database, sync_url
from api.jobs.monthly_reports import KIND, previous_month
from api.models import OutboxMessage
from api.services import reports
from api.services.context import AppContext, SystemClock
from tests.conftest import ADMIN
from tests.mailserver import Recorder, smtp_server

MAIL_FROM = "Entitle Reports <reports@entitle.example>"
# The demo's managed customers and their own addresses: never written to (seed 003: the partner intermediates).
MANAGED = {"support@globex.example", "gus@globex.example", "ops@initech.example"}
ACME_CONTACTS = ["finance@acme-retail.example", "cto@acme-retail.example"]


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_two_workers_one_killed_deliver_each_contracts_report_once(database_factory, tmp_path):  # type: ignore[no-untyped-def]
    url = database_factory.new()
    env = {**os.environ, "DATABASE_URL": url, "ENTITLE_OUTBOX_DIR": str(tmp_path / "unused"), "ENTITLE_MAIL_FROM": MAIL_FROM}
    _cli(env, "migrate")
    _cli(env, "demo")
    _cli(env, "customer", "report-contacts", "acme-retail", "--set", ",".join(ACME_CONTACTS))
    month = previous_month(date.today())  # what the worker's monthly-reports job queues on the report day
    engine = create_engine(sync_url(url), poolclass=pool.NullPool)

    recorder = Recorder(delay=0.05, hold_at=3)
    with smtp_server(recorder) as (server, port):
        env |= {
            "ENTITLE_SMTP_HOST": "127.0.0.1", "ENTITLE_SMTP_PORT": str(port), "ENTITLE_SMTP_SECURITY": "none",
            "ENTITLE_SMTP_TIMEOUT": "1.5", "ENTITLE_MAIL_LEASE_SECONDS": "3", "ENTITLE_MAIL_BATCH": "4",
            "ENTITLE_MAIL_INTERVAL_SECONDS": "1", "ENTITLE_REPORT_DAY": "1",
        }

        def worker(*extra: str) -> subprocess.Popen[bytes]:
            log = open(tmp_path / f"worker-{uuid.uuid4().hex[:6]}.log", "wb")  # noqa: SIM115 - closed with the process
            return subprocess.Popen(
                [sys.executable, "-m", "api.cli", "worker", *extra], cwd=PROJECT_ROOT, env=env, stdout=log,
                stderr=subprocess.STDOUT,
            )

        # Both run every job once: both queue the month's reports, both drain the outbox.
        workers = [worker("--once"), worker("--once")]
        restarted = None
        try:
            assert server.held.wait(120), "the server never got its third message"
            with engine.connect() as conn:
                owner = conn.execute(
                    text("SELECT lease_owner FROM outbox_messages WHERE message_id = :m"), {"m": server.held_message_id}
                ).scalar_one()
            [victim] = [w for w in workers if f":{w.pid}:" in owner]
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            server.release.set()
            restarted = worker("--job", "deliver-outbox")  # started again; runs until stopped
            deadline = time.monotonic() + 120
            left = None
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    left = conn.execute(text("SELECT count(*) FROM outbox_messages WHERE status <> 'sent' "
                                             "AND recipient_email IS NOT NULL")).scalar()
                if left == 0:
                    break
                time.sleep(0.2)
            assert left == 0, "the outbox was not drained"
            [survivor] = [w for w in workers if w is not victim]
            assert survivor.wait(60) == 0
        finally:
            for process in (*workers, restarted):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    process.wait(10)

    with engine.connect() as conn:
        rows = conn.execute(
            select(OutboxMessage.dedupe_key, OutboxMessage.message_id, OutboxMessage.customer_id, OutboxMessage.status)
            .where(OutboxMessage.kind == KIND)
        ).all()
    engine.dispose()
    contracts_reported = {key.split(":")[1] for key, *_ in rows}
    assert len(rows) == len(contracts_reported) >= 10  # one row per contract, however many workers queued
    assert all(key.endswith(f":{month:%Y-%m}:monthly") for key, *_ in rows)

    received = {r.message_id: r for r in server.received}
    counts = server.message_ids()
    for _, message_id, _, status in rows:
        assert status == "sent" and message_id in received, message_id
    # Each message once, but the one in flight when its worker was killed: at most one more copy, same Message-ID.
    assert sum(counts.values()) <= len(counts) + 1
    assert all(n == 1 for mid, n in counts.items() if mid != server.held_message_id)

    every_rcpt = {address for r in server.received for address in r.rcpt_tos}
    assert not every_rcpt & MANAGED, every_rcpt & MANAGED
    monthly = [received[message_id] for _, message_id, _, _ in rows]
    by_reference = {}
    for message in monthly:
        parts = {part.get_content_type(): part.get_content() for part in message.message.iter_parts()}
        assert message.message.get_content_type() == "multipart/alternative"
        assert set(parts) == {"text/plain", "text/html"}
        reference = message.message["Subject"].split(" report for ")[1].split(" (")[0]
        by_reference[reference] = (message, parts)
    acme = by_reference["DEMO-ADVISORY-ASSURE-MEDIUM"][0]
    assert sorted(acme.rcpt_tos) == sorted(ACME_CONTACTS)
    assert by_reference["DEMO-PARTNER-SUPPORT-ENTERPRISE"][0].rcpt_tos == ["support@northwind.example"]

    # The figures: each message's text is the report built in-process for the same contract and month.
    async def expected() -> None:
        db = Database(url)
        try:
            ctx = AppContext(db, Settings(database_url=url, mail_from=MAIL_FROM), SystemClock())
            for _, message_id, _, _ in rows:
                message = received[message_id]
                reference = message.message["Subject"].split(" report for ")[1].split(" (")[0]
                contract = next(c for c in await reports_contracts(ctx, reference) if c.reference == reference)
                report = await reports.consumption_report(ctx, ADMIN, contract.id, month)
                parts = by_reference[reference][1]
                rendered = reports.render_report_email(
                    report, recipient_name=str(message.message["To"]).split(" <")[0].strip('"'),
                    public_url=ctx.settings.link_base, on_behalf="northwind" in message.rcpt_tos[0]
                    or "bluefin" in message.rcpt_tos[0],
                )
                assert parts["text/plain"].replace("\r\n", "\n").strip() == rendered.text.strip(), reference
        finally:
            await db.dispose()

    asyncio.run(expected())


async def reports_contracts(ctx: AppContext, reference: str):  # type: ignore[no-untyped-def]
    from api.services import contracts

    return (await contracts.page_contracts(ctx, ADMIN, reference=reference)).items
