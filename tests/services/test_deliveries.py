"""E-mail deliveries for staff (`list_deliveries`, `delivery_counts`, `retry_delivery`): newest first in
keyset pages, filtered by status, kind and customer; a failed message put back in the queue, audited,
and then delivered; only admins and support engineers may look or retry."""

from __future__ import annotations

import email
import email.policy
import uuid
from datetime import timedelta

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from sqlalchemy import select, update

from api.db import Database
from api.jobs.sender import deliver_outbox
from api.migrate import upgrade
from api.mail import message_id_for
from api.models import AuditEntry, OutboxMessage, OutboxStatus
from api.services import deliveries, outbox, parties
from api.services.context import Actor, AppContext
from api.services.errors import Conflict, ErrorCode, NotFound, PermissionDenied, ValidationFailed
from tests.conftest import ADMIN, NOW, unique

SUPPORT = Actor(kind="staff", ref="user:support", name="Sam Support", roles=frozenset({"support_engineer"}))
CLIENT_MANAGER = Actor(kind="staff", ref="user:cm", name="Carl Manager", roles=frozenset({"client_manager"}),
                       user_id=uuid.uuid4())
READ_ONLY_ADMIN = Actor(kind="staff", ref="token:ro", name="Read-only token", roles=frozenset({"admin"}), read_only=True)


@pytest.fixture
async def own_ctx(database_factory, ctx) -> AsyncIterator[AppContext]:  # type: ignore[no-untyped-def]
    """A database of its own, for a test that runs the sender: it must not deliver other tests' messages."""
    url = database_factory.new()
    upgrade(url)
    db = Database(url)
    try:
        yield AppContext(db=db, settings=replace(ctx.settings, database_url=url), clock=ctx.clock)
    finally:
        await db.dispose()


async def queue(ctx: AppContext, customer_id: uuid.UUID, key: str, *, kind: str = "ticket_filed",
                to: str | None = "it@acme.example") -> uuid.UUID:
    async with ctx.db.write() as session:
        [queued] = await outbox.queue_all(session, ctx, [outbox.Message(
            kind=kind, customer_id=customer_id, dedupe_key=key, subject=f"About {key}", body=f"Text of {key}.",
            recipient=outbox.Recipient("customer", "Acme IT", to),
        )])
    return queued


async def mark_failed(ctx: AppContext, message_id: uuid.UUID) -> None:
    # As the sender leaves a message after its last attempt.
    async with ctx.db.write() as session:
        await session.execute(
            update(OutboxMessage).where(OutboxMessage.id == message_id)
            .values(status=OutboxStatus.FAILED, attempts=6, failed_at=ctx.now(), last_error="SMTPDataError: (550, 'no')")
        )


async def test_deliveries_are_listed_newest_first_in_pages_and_filtered(ctx, clock, make_customer):
    acme, globex = await make_customer(), await make_customer()
    keys = [unique("list") for _ in range(5)]
    ids = []
    for n, key in enumerate(keys):
        clock.instant = NOW + timedelta(minutes=n)
        ids.append(await queue(ctx, acme.id, key, kind="booking_requested" if n % 2 else "ticket_filed"))
    other = await queue(ctx, globex.id, unique("other"))
    await mark_failed(ctx, ids[1])

    first = await deliveries.list_deliveries(ctx, SUPPORT, first=2, customer_id=acme.id)
    assert [m.dedupe_key for m in first.deliveries] == [keys[4], keys[3]]
    assert first.has_next_page
    rest = await deliveries.list_deliveries(ctx, SUPPORT, first=10, after=first.end_cursor, customer_id=acme.id)
    assert [m.dedupe_key for m in rest.deliveries] == [keys[2], keys[1], keys[0]]
    assert not rest.has_next_page

    booked = await deliveries.list_deliveries(ctx, ADMIN, kind="booking_requested", customer_id=acme.id)
    assert [m.dedupe_key for m in booked.deliveries] == [keys[3], keys[1]]
    failed = await deliveries.list_deliveries(ctx, SUPPORT, status=OutboxStatus.FAILED, customer_id=acme.id)
    assert [(m.id, m.attempts, m.last_error) for m in failed.deliveries] == [(ids[1], 6, "SMTPDataError: (550, 'no')")]
    mine = await deliveries.list_deliveries(ctx, SUPPORT, customer_id=globex.id)
    assert [m.id for m in mine.deliveries] == [other]
    assert mine.deliveries[0].status == OutboxStatus.QUEUED

    counts = await deliveries.delivery_counts(ctx, SUPPORT)
    assert set(counts) == set(OutboxStatus) and counts[OutboxStatus.FAILED] >= 1 and counts[OutboxStatus.QUEUED] >= 5


async def test_a_failed_message_is_queued_again_audited_and_then_delivered_with_its_message_id(own_ctx, clock):
    ctx = own_ctx
    acme = await parties.create_customer(ctx, ADMIN, parties.NewCustomer(code="acme", name="Acme", email="it@acme.example"))
    key = unique("retry")
    message_id = await queue(ctx, acme.id, key)
    await mark_failed(ctx, message_id)
    clock.instant = NOW + timedelta(hours=1)

    retried = await deliveries.retry_delivery(ctx, SUPPORT, message_id)
    assert (retried.status, retried.attempts, retried.next_attempt_at, retried.failed_at) == (
        OutboxStatus.QUEUED, 0, NOW + timedelta(hours=1), None
    )
    assert retried.message_id == message_id_for(key, ctx.settings.mail_from)
    async with ctx.db.read() as session:
        [entry] = await session.scalars(select(AuditEntry).where(AuditEntry.target_id == str(message_id)))
    assert (entry.action, entry.actor_ref, entry.on_behalf_of_customer_id) == ("outbox.retry", "user:support", acme.id)
    assert entry.detail["attempts"] == 6 and entry.detail["last_error"] == "SMTPDataError: (550, 'no')"
    assert entry.detail["dedupe_key"] == key

    # Retrying it again while it waits is refused: only a failed message goes back.
    with pytest.raises(Conflict) as refused:
        await deliveries.retry_delivery(ctx, SUPPORT, message_id)
    assert refused.value.code == ErrorCode.WRONG_STATUS and refused.value.field == "id"
    assert "is queued: only a failed message can be retried" in refused.value.message

    # The sender takes it again (written as .eml here: no SMTP server configured).
    run = await deliver_outbox(ctx)
    assert (run.leased, run.sent) == (1, 1)
    async with ctx.db.read() as session:
        row = await session.get(OutboxMessage, message_id)
    assert (row.status, row.attempts, row.sent_at) == (OutboxStatus.SENT, 1, NOW + timedelta(hours=1))
    files = [f for f in ctx.settings.outbox_dir.iterdir() if row.message_id[1:13] in f.name]
    assert len(files) == 1
    assert email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)["Message-ID"] == row.message_id


async def test_retry_refuses_unknown_messages_and_messages_with_no_address(ctx, make_customer):
    acme = await make_customer()
    with pytest.raises(NotFound, match="does not exist"):
        await deliveries.retry_delivery(ctx, SUPPORT, uuid.uuid4())
    nowhere = await queue(ctx, acme.id, unique("nowhere"), to=None)
    await mark_failed(ctx, nowhere)
    with pytest.raises(ValidationFailed, match="has no e-mail address to send to"):
        await deliveries.retry_delivery(ctx, SUPPORT, nowhere)


@pytest.mark.parametrize("actor", [
    CLIENT_MANAGER,
    Actor(kind="customer", ref="user:c", name="A customer user", customer_id=uuid.uuid4()),
    Actor(kind="partner", ref="user:p", name="A partner user", partner_id=uuid.uuid4()),
    Actor(kind="staff", ref="token:integrator", name="Integrator", roles=frozenset({"integrator"})),
], ids=["client manager", "customer", "partner", "integrator"])
async def test_only_admins_and_support_engineers_see_or_retry_deliveries(ctx, make_customer, actor):
    acme = await make_customer()
    message_id = await queue(ctx, acme.id, unique("policy"))
    await mark_failed(ctx, message_id)
    with pytest.raises(PermissionDenied, match="may not read e-mail deliveries"):
        await deliveries.list_deliveries(ctx, actor)
    with pytest.raises(PermissionDenied, match="may not retry failed e-mail deliveries"):
        await deliveries.retry_delivery(ctx, actor, message_id)
    with pytest.raises(PermissionDenied, match="has read-only access"):
        await deliveries.retry_delivery(ctx, READ_ONLY_ADMIN, message_id)
    assert (await deliveries.list_deliveries(ctx, READ_ONLY_ADMIN, customer_id=acme.id)).deliveries[0].id == message_id
