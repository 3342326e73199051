"""Outbox delivery (`deliver_outbox`, the worker's deliver-outbox job): every queued message reaches a real
SMTP server (aiosmtpd, in-process) or an .eml file, once per dedupe key, with retries and backoff, leases
that expire, and a crash between send and commit resent with the same Message-ID. Each test runs on a
database of its own, so it sees only its own messages."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, pool, select, text

from api.config import PROJECT_ROOT, Settings
from api.db import Database, sync_url
from api.jobs import sender
from api.jobs.sender import backoff, deliver_outbox
from api.mail import FileBackend, SmtpBackend, build_outgoing, make_backend, message_id_for
from api.migrate import upgrade
from api.models import OutboxMessage, OutboxStatus
from api.services import outbox, parties
from api.services.context import AppContext, FixedClock, SystemClock
from tests.conftest import ADMIN, NOW
from tests.mailserver import Recorder, free_port, smtp_server

MAIL_FROM = "Entitle Support <support@entitle.example>"


@pytest.fixture
def fresh_url(database_factory) -> str:  # type: ignore[no-untyped-def]
    url = database_factory.new()
    upgrade(url)
    return url


@pytest.fixture
async def fresh_db(fresh_url: str) -> AsyncIterator[Database]:
    db = Database(fresh_url)
    yield db
    await db.dispose()


@pytest.fixture
def sync_engine(fresh_url: str) -> Iterator[Engine]:
    engine = create_engine(sync_url(fresh_url), poolclass=pool.NullPool)
    yield engine
    engine.dispose()


def mail_settings(url: str, tmp_path: Path, port: int | None = None, **overrides) -> Settings:  # type: ignore[no-untyped-def]
    values = dict(
        database_url=url, mail_from=MAIL_FROM, outbox_dir=tmp_path / "outbox", smtp_timeout_seconds=5.0,
        mail_lease_seconds=60, mail_retry_seconds=60, mail_max_attempts=3, mail_batch=10,
    )
    if port is not None:
        values.update(smtp_host="127.0.0.1", smtp_port=port, smtp_security="none")
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def customer_id(ctx: AppContext, email_address: str | None = "it@acme.example") -> uuid.UUID:
    code = f"mail-{uuid.uuid4().hex[:8]}"
    found = await parties.create_customer(ctx, ADMIN, parties.NewCustomer(code=code, name="Acme", email=email_address))
    return found.id


def message(customer: uuid.UUID, key: str, *, to: str | None = "it@acme.example", **fields) -> outbox.Message:  # type: ignore[no-untyped-def]
    return outbox.Message(
        kind=fields.pop("kind", "ticket_filed"), customer_id=customer, dedupe_key=key,
        subject=fields.pop("subject", f"Subject of {key}"), body=fields.pop("body", f"Plain text of {key}."),
        recipient=outbox.Recipient("customer", fields.pop("name", "Acme IT"), to), **fields,
    )


async def queue(ctx: AppContext, *messages: outbox.Message) -> None:
    async with ctx.db.write() as session:
        await outbox.queue_all(session, ctx, list(messages))


async def rows(ctx: AppContext) -> dict[str, OutboxMessage]:
    async with ctx.db.read() as session:
        return {row.dedupe_key: row for row in await session.scalars(select(OutboxMessage))}


# --- SMTP: what the server receives ------------------------------------------------------------------


async def test_each_message_reaches_the_smtp_server_once_with_both_parts_and_its_message_id(fresh_db, fresh_url, tmp_path):
    with smtp_server(Recorder()) as (server, port):
        ctx = AppContext(fresh_db, mail_settings(fresh_url, tmp_path, port), FixedClock(NOW))
        acme = await customer_id(ctx)
        await queue(
            ctx,
            message(acme, "report:1", kind="monthly_report", subject="Your report for February 2026",
                    body="Used: 3 of 5 activities.", html_body="<p>Used: <b>3</b> of 5 activities.</p>",
                    extra_emails=("cfo@acme.example", "IT@acme.example", "ops@acme.example")),
            message(acme, "ticket:1:filed", name="Jürgen Ölund"),
            message(acme, "ticket:2:filed", to="someone@other.example"),
        )
        run = await deliver_outbox(ctx)
    assert (run.leased, run.sent, run.retrying, run.failed) == (3, 3, 0, 0)
    assert server.count() == 3
    got = {r.message_id: r for r in server.received}
    assert set(got) == {message_id_for(k, MAIL_FROM) for k in ("report:1", "ticket:1:filed", "ticket:2:filed")}
    assert all(re.fullmatch(r"<[0-9a-f]{32}@entitle\.example>", mid) for mid in got)

    report = got[message_id_for("report:1", MAIL_FROM)]
    assert report.mail_from == "support@entitle.example"
    # The recipient and the extra addresses, each once (an address differing only in case is the same).
    assert report.rcpt_tos == ["it@acme.example", "cfo@acme.example", "ops@acme.example"]
    assert report.message["To"] == "Acme IT <it@acme.example>, cfo@acme.example, ops@acme.example"
    assert report.message["From"] == MAIL_FROM
    assert report.message["Subject"] == "Your report for February 2026"
    assert report.message["Date"].datetime == NOW
    assert report.message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in report.message.iter_parts()] == ["text/plain", "text/html"]
    assert report.message.get_body(("plain",)).get_content().strip() == "Used: 3 of 5 activities."
    assert report.message.get_body(("html",)).get_content().strip() == "<p>Used: <b>3</b> of 5 activities.</p>"

    plain = got[message_id_for("ticket:1:filed", MAIL_FROM)]
    assert plain.rcpt_tos == ["it@acme.example"]
    assert plain.message.get_content_type() == "text/plain"
    assert plain.message["To"].addresses[0].display_name == "Jürgen Ölund"
    assert got[message_id_for("ticket:2:filed", MAIL_FROM)].rcpt_tos == ["someone@other.example"]

    for row in (await rows(ctx)).values():
        assert row.status == OutboxStatus.SENT
        assert (row.sent_at, row.send_started_at, row.attempts, row.crash_resends) == (NOW, NOW, 1, 0)
        assert row.lease_owner is None and row.leased_until is None and row.last_error is None
    # Nothing is due any more: a second run sends nothing.
    assert (await deliver_outbox(ctx)).leased == 0


async def test_without_smtp_each_message_is_an_eml_file_and_writing_it_again_replaces_it(fresh_db, fresh_url, tmp_path):
    ctx = AppContext(fresh_db, mail_settings(fresh_url, tmp_path), FixedClock(NOW))
    acme = await customer_id(ctx)
    await queue(
        ctx,
        message(acme, "report:2", kind="monthly_report", html_body="<table><tr><td>3</td></tr></table>"),
        message(acme, "booking:9:requested", kind="booking_requested"),
    )
    run = await deliver_outbox(ctx)
    assert (run.sent, run.failed) == (2, 0)
    files = sorted((tmp_path / "outbox").iterdir())
    assert [f.name for f in files] == sorted(
        f"20260310T120000000000Z-{kind}-{message_id_for(key, MAIL_FROM)[1:13]}.eml"
        for kind, key in (("monthly_report", "report:2"), ("booking_requested", "booking:9:requested"))
    )
    parsed = {
        m["Message-ID"]: m for m in (email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files)
    }
    report = parsed[message_id_for("report:2", MAIL_FROM)]
    assert report["To"] == "Acme IT <it@acme.example>"
    assert report.get_body(("html",)).get_content().strip() == "<table><tr><td>3</td></tr></table>"
    assert report.get_body(("plain",)).get_content().strip() == "Plain text of report:2."
    assert parsed[message_id_for("booking:9:requested", MAIL_FROM)].get_content_type() == "text/plain"

    # A resend (after a crash) writes the same file again, byte for byte: still one file per message.
    row = (await rows(ctx))["report:2"]
    backend = FileBackend(tmp_path / "outbox")
    before = {f.name: f.read_bytes() for f in files}
    await backend.send(build_outgoing(
        mail_from=MAIL_FROM, message_id=row.message_id, kind=row.kind, created_at=row.created_at,
        recipient_name=row.recipient_name, recipient_email=row.recipient_email, extra_emails=row.extra_emails,
        subject=row.subject, body=row.body, html_body=row.html_body,
    ))
    assert {f.name: f.read_bytes() for f in (tmp_path / "outbox").iterdir()} == before


# --- failures: backoff, the limit, the batch goes on --------------------------------------------------


async def test_a_refused_send_backs_off_exponentially_then_fails_after_the_last_attempt(fresh_db, fresh_url, tmp_path):
    clock = FixedClock(NOW)
    with smtp_server(Recorder(refuse_data=True)) as (server, port):
        ctx = AppContext(fresh_db, mail_settings(fresh_url, tmp_path, port), clock)
        await queue(ctx, message(await customer_id(ctx), "ticket:3:filed"))

        run = await deliver_outbox(ctx)
        assert (run.sent, run.retrying, run.failed) == (0, 1, 0)
        row = (await rows(ctx))["ticket:3:filed"]
        assert (row.status, row.attempts, row.next_attempt_at) == (OutboxStatus.QUEUED, 1, NOW + timedelta(seconds=60))
        assert "550" in row.last_error and "refused by policy" in row.last_error
        assert row.send_started_at is None and row.lease_owner is None and row.failed_at is None

        clock.instant = NOW + timedelta(seconds=59)  # not due yet
        assert (await deliver_outbox(ctx)).leased == 0

        clock.instant = NOW + timedelta(seconds=60)
        assert (await deliver_outbox(ctx)).retrying == 1
        row = (await rows(ctx))["ticket:3:filed"]
        assert (row.attempts, row.next_attempt_at) == (2, clock.instant + timedelta(seconds=120))

        clock.instant += timedelta(seconds=120)
        run = await deliver_outbox(ctx)
        assert (run.retrying, run.failed) == (0, 1)
        row = (await rows(ctx))["ticket:3:filed"]
        assert (row.status, row.attempts, row.failed_at) == (OutboxStatus.FAILED, 3, clock.instant)

        clock.instant += timedelta(days=30)  # failed for good: never taken again
        assert (await deliver_outbox(ctx)).leased == 0
    assert server.count() == 0


def test_backoff_doubles_from_the_base_up_to_six_hours():
    assert [backoff(300, n) for n in (1, 2, 3, 4)] == [timedelta(seconds=s) for s in (300, 600, 1200, 2400)]
    assert backoff(300, 8) == timedelta(hours=6) == backoff(300, 40)


async def test_a_server_that_is_not_there_is_a_failure_to_retry(fresh_db, fresh_url, tmp_path):
    ctx = AppContext(fresh_db, mail_settings(fresh_url, tmp_path, free_port()), FixedClock(NOW))
    await queue(ctx, message(await customer_id(ctx), "ticket:4:filed"))
    run = await deliver_outbox(ctx)
    assert (run.sent, run.retrying) == (0, 1)
    row = (await rows(ctx))["ticket:4:filed"]
    assert row.status == OutboxStatus.QUEUED and row.attempts == 1
    assert row.last_error.startswith("SMTPConnectError")


async def test_one_bad_message_does_not_stop_the_batch(fresh_db, fresh_url, tmp_path):
    with smtp_server(Recorder(refuse_rcpt=frozenset({"gone@acme.example"}))) as (server, port):
        ctx = AppContext(fresh_db, mail_settings(fresh_url, tmp_path, port, mail_batch=2), FixedClock(NOW))
        acme = await customer_id(ctx)
        await queue(
            ctx,
            message(acme, "m:1"),
            message(acme, "m:2", to="gone@acme.example"),  # every recipient refused: retried later
            message(acme, "m:3", to=None),  # a customer without an e-mail address: failed at once
            message(acme, "m:4", to="a@acme.example", extra_emails=("gone@acme.example",)),  # one of two refused
            message(acme, "m:5", subject="Broken\nBcc: everyone@example.com"),  # a header the email package refuses
            message(acme, "m:6"),
        )
        run = await deliver_outbox(ctx)
    assert (run.leased, run.sent, run.retrying, run.failed) == (6, 3, 1, 2)
    found = await rows(ctx)
    assert {k: r.status for k, r in found.items()} == {
        "m:1": OutboxStatus.SENT, "m:2": OutboxStatus.QUEUED, "m:3": OutboxStatus.FAILED,
        "m:4": OutboxStatus.SENT, "m:5": OutboxStatus.FAILED, "m:6": OutboxStatus.SENT,
    }
    assert found["m:2"].last_error.startswith("SMTPRecipientsRefused") and found["m:2"].attempts == 1
    assert found["m:3"].last_error == "Acme IT has no e-mail address: nothing to send to"
    assert found["m:3"].attempts == 0 and found["m:3"].failed_at == NOW  # nothing was ever sent
    assert found["m:4"].last_error == "refused by the server: gone@acme.example (550 5.1.1 no such mailbox)"
    assert found["m:5"].last_error.startswith("the message cannot be built")
    assert sorted(server.message_ids()) == sorted(message_id_for(k, MAIL_FROM) for k in ("m:1", "m:4", "m:6"))
    assert [r.rcpt_tos for r in server.received if r.message_id == message_id_for("m:4", MAIL_FROM)] == [["a@acme.example"]]


# --- leases and crashes -------------------------------------------------------------------------------


async def test_an_expired_lease_is_taken_again(fresh_db, fresh_url, tmp_path):
    clock = FixedClock(NOW)
    with smtp_server(Recorder()) as (server, port):
        ctx = AppContext(fresh_db, mail_settings(fresh_url, tmp_path, port), clock)
        acme = await customer_id(ctx)
        await queue(ctx, message(acme, "lease:1"), message(acme, "lease:2"))
        # A sender leases both, then dies before starting either send.
        assert len(await sender._lease(ctx, "dead-worker", 10)) == 2
        row = (await rows(ctx))["lease:1"]
        assert (row.status, row.lease_owner, row.leased_until) == (OutboxStatus.SENDING, "dead-worker", NOW + timedelta(seconds=60))

        clock.instant = NOW + timedelta(seconds=59)
        assert (await deliver_outbox(ctx)).leased == 0  # still the dead worker's
        clock.instant = NOW + timedelta(seconds=60)
        run = await deliver_outbox(ctx)
    assert (run.leased, run.sent, run.resent_after_crash) == (2, 2, 0)  # no send had started: nothing in doubt
    assert server.count() == 2
    assert all(r.attempts == 1 and r.crash_resends == 0 and r.status == OutboxStatus.SENT for r in (await rows(ctx)).values())


async def test_a_message_in_doubt_is_resent_with_the_same_message_id_and_the_resend_recorded(fresh_db, fresh_url, tmp_path):
    clock = FixedClock(NOW)
    with smtp_server(Recorder()) as (server, port):
        ctx = AppContext(fresh_db, mail_settings(fresh_url, tmp_path, port), clock)
        await queue(ctx, message(await customer_id(ctx), "doubt:1"))
        # A sender leases it, records the start, sends it, and dies before recording the result.
        [leased] = await sender._lease(ctx, "dead-worker", 10)
        assert await sender._start(ctx, leased, "dead-worker")
        backend = SmtpBackend(ctx.settings)
        await backend.send(leased.outgoing)
        await backend.close()
        row = (await rows(ctx))["doubt:1"]
        assert (row.status, row.attempts, row.send_started_at, row.sent_at) == (OutboxStatus.SENDING, 1, NOW, None)

        clock.instant = NOW + timedelta(seconds=30)
        assert (await deliver_outbox(ctx)).leased == 0  # its lease still runs
        clock.instant = NOW + timedelta(seconds=61)
        run = await deliver_outbox(ctx)
    assert (run.sent, run.resent_after_crash) == (1, 1)
    # Two copies reached the server: the same Message-ID, so the receiver can drop the second.
    assert server.message_ids() == {message_id_for("doubt:1", MAIL_FROM): 2}
    first, second = server.received
    assert first.message.as_bytes() == second.message.as_bytes()
    row = (await rows(ctx))["doubt:1"]
    assert (row.status, row.attempts, row.crash_resends, row.sent_at) == (OutboxStatus.SENT, 2, 1, clock.instant)
    assert row.last_error == (
        f"a sender stopped during the send it started at {NOW.isoformat()}, before recording its result: "
        "sent again with the same Message-ID"
    )


async def test_a_sender_whose_lease_was_taken_over_does_not_send(fresh_db, fresh_url, tmp_path):
    clock = FixedClock(NOW)
    with smtp_server(Recorder()) as (server, port):
        ctx = AppContext(fresh_db, mail_settings(fresh_url, tmp_path, port), clock)
        await queue(ctx, message(await customer_id(ctx), "slow:1"))
        [slow] = await sender._lease(ctx, "slow-worker", 10)
        clock.instant = NOW + timedelta(seconds=61)  # the slow one's lease expires; another takes the message
        assert (await deliver_outbox(ctx)).sent == 1
        run = sender.DeliveryRun()
        await sender._deliver_one(ctx, SmtpBackend(ctx.settings), slow, "slow-worker", run)
    assert (run.sent, run.lost) == (0, 1)
    assert server.count() == 1


async def test_two_senders_at_once_deliver_each_message_once(fresh_url, tmp_path):
    # Two engines on one database: as two worker processes would be.
    first, second = Database(fresh_url), Database(fresh_url)
    try:
        with smtp_server(Recorder(delay=0.01)) as (server, port):
            settings = mail_settings(fresh_url, tmp_path, port, mail_batch=3)
            a = AppContext(first, settings, SystemClock())
            b = AppContext(second, settings, SystemClock())
            acme = await customer_id(a)
            await queue(a, *(message(acme, f"race:{n}") for n in range(30)))
            runs = await asyncio.gather(deliver_outbox(a), deliver_outbox(b))
        assert sum(run.sent for run in runs) == 30
        assert all(run.sent > 0 for run in runs)  # both took part
        assert sum(run.lost for run in runs) == 0
        assert sorted(server.message_ids().values()) == [1] * 30
        assert set(server.message_ids()) == {message_id_for(f"race:{n}", MAIL_FROM) for n in range(30)}
    finally:
        await first.dispose()
        await second.dispose()


async def test_on_postgresql_rows_another_sender_holds_are_skipped_not_waited_for(fresh_db, fresh_url, tmp_path, sync_engine):
    if sync_engine.dialect.name != "postgresql":
        pytest.skip("FOR UPDATE SKIP LOCKED is PostgreSQL's; SQLite senders take turns on the write lock")
    with smtp_server(Recorder()) as (server, port):
        ctx = AppContext(fresh_db, mail_settings(fresh_url, tmp_path, port), SystemClock())
        acme = await customer_id(ctx)
        await queue(ctx, *(message(acme, f"skip:{n}") for n in range(4)))
        with sync_engine.connect() as other:
            # Another sender's lease transaction, still open, has locked two rows.
            other.execute(text(
                "SELECT id FROM outbox_messages WHERE dedupe_key IN ('skip:0', 'skip:1') FOR UPDATE"
            )).all()
            run = await asyncio.wait_for(deliver_outbox(ctx), timeout=20)
            other.rollback()
        assert run.sent == 2
        assert set(server.message_ids()) == {message_id_for(k, MAIL_FROM) for k in ("skip:2", "skip:3")}
        assert (await deliver_outbox(ctx)).sent == 2  # released: taken now


# --- two worker processes, one killed in the middle of a send ---------------------------------------


def test_two_worker_processes_one_killed_mid_send_deliver_one_message_per_key(fresh_url, sync_engine, tmp_path):
    """Forty messages, two `entitle worker` processes. The server records the tenth message, then holds
    its answer; the worker that sent it is killed with SIGKILL: the message reached the server but its
    sender never learnt it, the one window where a second copy can arise. A worker started again drains
    the rest. Each message arrives once, except that one: twice, with the same Message-ID, and recorded
    as resent after a crash."""
    keys = [f"crash:{n:02}" for n in range(40)]
    expected = {message_id_for(k, MAIL_FROM): k for k in keys}

    async def prepare() -> None:
        db = Database(fresh_url)
        try:
            ctx = AppContext(db, mail_settings(fresh_url, tmp_path), SystemClock())
            acme = await customer_id(ctx)
            await queue(ctx, *(message(acme, k) for k in keys))
        finally:
            await db.dispose()

    asyncio.run(prepare())
    recorder = Recorder(delay=0.05, hold_at=10)
    with smtp_server(recorder) as (server, port):
        env = {
            **os.environ, "DATABASE_URL": fresh_url, "ENTITLE_SMTP_HOST": "127.0.0.1", "ENTITLE_SMTP_PORT": str(port),
            "ENTITLE_SMTP_SECURITY": "none", "ENTITLE_MAIL_FROM": MAIL_FROM, "ENTITLE_SMTP_TIMEOUT": "1.5",
            "ENTITLE_MAIL_LEASE_SECONDS": "3", "ENTITLE_MAIL_BATCH": "4", "ENTITLE_MAIL_INTERVAL_SECONDS": "1",
            "ENTITLE_OUTBOX_DIR": str(tmp_path / "unused"),
        }

        def worker(*extra: str) -> subprocess.Popen[bytes]:
            log = open(tmp_path / f"worker-{uuid.uuid4().hex[:6]}.log", "wb")  # noqa: SIM115 - closed with the process
            return subprocess.Popen(
                [sys.executable, "-m", "api.cli", "worker", "--job", "deliver-outbox", *extra],
                cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )

        workers = [worker("--once"), worker("--once")]
        restarted = None
        try:
            assert server.held.wait(60), "the server never got its tenth message"
            with sync_engine.connect() as conn:
                owner, started, sent = conn.execute(
                    text("SELECT lease_owner, send_started_at, sent_at FROM outbox_messages WHERE message_id = :m"),
                    {"m": server.held_message_id},
                ).one()
            assert started is not None and sent is None  # the start was committed before the send
            [victim] = [w for w in workers if f":{w.pid}:" in owner]
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            assert victim.returncode == -signal.SIGKILL
            server.release.set()
            restarted = worker()  # the killed worker, started again: it runs until stopped
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                with sync_engine.connect() as conn:
                    left = conn.execute(text("SELECT count(*) FROM outbox_messages WHERE status <> 'sent'")).scalar()
                if left == 0:
                    break
                time.sleep(0.2)
            assert left == 0, "the messages were not all sent"
            [survivor] = [w for w in workers if w is not victim]
            assert survivor.wait(30) == 0
        finally:
            for process in (*workers, restarted):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    process.wait(10)

    received = server.message_ids()
    # What a receiving MTA keeps, dropping a Message-ID it has already seen: one message per key.
    assert set(received) == set(expected)
    # The raw count: at most one extra per kill, and here exactly one, the held message.
    assert sum(received.values()) == len(keys) + 1
    assert {mid: n for mid, n in received.items() if n > 1} == {server.held_message_id: 2}
    with sync_engine.connect() as conn:
        found = {
            key: (attempts, resends)
            for key, attempts, resends in conn.execute(text("SELECT dedupe_key, attempts, crash_resends FROM outbox_messages"))
        }
    held_key = expected[server.held_message_id]
    assert found.pop(held_key) == (2, 1)
    assert set(found.values()) == {(1, 0)}  # no other message was sent twice, or even attempted twice


# --- settings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"smtp_security": "ssl"}, "ENTITLE_SMTP_SECURITY must be starttls, tls or none, not 'ssl'"),
        ({"smtp_port": 0}, "ENTITLE_SMTP_PORT must be 1 to 65535, not 0"),
        ({"smtp_user": "mailer"}, "ENTITLE_SMTP_USER and ENTITLE_SMTP_PASSWORD are set together or not at all"),
        ({"mail_from": "nobody"}, "ENTITLE_MAIL_FROM must be an address"),
        ({"mail_max_attempts": 0}, "ENTITLE_MAIL_MAX_ATTEMPTS must be 1 to 100, not 0"),
        ({"mail_batch": 0}, "ENTITLE_MAIL_BATCH must be 1 to 10000, not 0"),
        ({"mail_retry_seconds": 0}, "ENTITLE_MAIL_RETRY_SECONDS must be 1 to 86400, not 0"),
        ({"mail_lease_seconds": 59}, r"ENTITLE_MAIL_LEASE_SECONDS \(59\) must be at least twice ENTITLE_SMTP_TIMEOUT \(30\)"),
    ],
)
def test_mail_settings_out_of_range_are_refused_with_the_variable_named(changes, message):
    with pytest.raises(ValueError, match=message):
        replace(Settings(), **changes)


def test_mail_settings_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ENTITLE_SMTP_HOST", "mail.example.com")
    monkeypatch.setenv("ENTITLE_SMTP_PORT", "465")
    monkeypatch.setenv("ENTITLE_SMTP_SECURITY", "TLS")
    monkeypatch.setenv("ENTITLE_SMTP_USER", "mailer")
    monkeypatch.setenv("ENTITLE_SMTP_PASSWORD", "s3cret")
    monkeypatch.setenv("ENTITLE_OUTBOX_DIR", str(tmp_path))
    settings = Settings.from_env()
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_security) == ("mail.example.com", 465, "tls")
    assert (settings.smtp_user, settings.smtp_password, settings.outbox_dir) == ("mailer", "s3cret", tmp_path)
    assert "s3cret" not in repr(settings)
    monkeypatch.setenv("ENTITLE_SMTP_PORT", "smtp")
    with pytest.raises(ValueError, match="ENTITLE_SMTP_PORT must be a whole number, not 'smtp'"):
        Settings.from_env()


def test_the_default_without_smtp_is_the_var_outbox_folder(monkeypatch):
    monkeypatch.delenv("ENTITLE_SMTP_HOST", raising=False)
    monkeypatch.delenv("ENTITLE_OUTBOX_DIR", raising=False)
    settings = Settings.from_env()
    backend = make_backend(settings)
    assert isinstance(backend, FileBackend) and backend.folder == PROJECT_ROOT / "var" / "outbox"
    assert isinstance(make_backend(replace(settings, smtp_host="mail.example.com")), SmtpBackend)


# --- the migration --------------------------------------------------------------------------------


def test_messages_queued_before_delivery_existed_are_due_after_the_migration(database_factory, monkeypatch):
    url = database_factory.new()
    upgrade(url, "58bcc55cb401")  # the schema before outbox delivery
    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    native = engine.dialect.name == "postgresql"

    def ident(value: uuid.UUID) -> object:
        return value if native else value.hex

    customer, waiting, sent = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    try:
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO customers (id, code, name, created_at) VALUES (:id, 'old', 'Old Ltd', :at)"),
                {"id": ident(customer), "at": NOW},
            )
            for row_id, key, sent_at in ((waiting, "ticket:old:filed", None), (sent, "ticket:old:resolved", NOW)):
                conn.execute(
                    text(
                        "INSERT INTO outbox_messages (id, dedupe_key, kind, customer_id, recipient_kind, recipient_name,"
                        " recipient_email, subject, body, created_at, attempts, sent_at) VALUES (:id, :key, 'ticket_filed',"
                        " :customer, 'customer', 'Old Ltd', 'it@old.example', 'Filed', 'Text', :at, 0, :sent_at)"
                    ),
                    {"id": ident(row_id), "key": key, "customer": ident(customer), "at": NOW, "sent_at": sent_at},
                )
        monkeypatch.setenv("ENTITLE_MAIL_FROM", MAIL_FROM)
        upgrade(url)
        with engine.connect() as conn:
            found = {
                key: (status, message_id, extra)
                for key, status, message_id, extra in conn.execute(
                    text("SELECT dedupe_key, status, message_id, extra_emails FROM outbox_messages")
                )
            }
            due = conn.execute(text("SELECT count(*) FROM outbox_messages WHERE next_attempt_at = created_at")).scalar()
    finally:
        engine.dispose()
    assert due == 2
    extra = found["ticket:old:filed"][2]
    assert (extra if isinstance(extra, list) else json.loads(extra)) == []
    assert {key: value[:2] for key, value in found.items()} == {
        "ticket:old:filed": ("queued", message_id_for("ticket:old:filed", MAIL_FROM)),
        "ticket:old:resolved": ("sent", message_id_for("ticket:old:resolved", MAIL_FROM)),
    }
