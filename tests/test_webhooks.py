"""Webhooks end to end: events emitted in the transaction of the change, fanned out only to subscriptions whose
owner may see them, sent by the deliver-webhooks job to a real HTTP receiver (uvicorn on 127.0.0.1) that
verifies every signature and counts what it accepted, through a receiver outage, with retries, attempts
recorded, replays and the signature scheme's replay window. The module runs on a database of its own, so the
provider's subscriptions here see only this module's events."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from api.config import PROJECT_ROOT, Settings
from api.db import Database
from api.jobs.monthly_reports import queue_monthly_reports
from api.jobs.webhooks import deliver_webhooks
from api.jobs.worker import JOBS
from api.migrate import upgrade
from api.models import PartnerCustomer, StaffRole, UserKind, WebhookAttempt, WebhookDelivery, WebhookDeliveryStatus, WebhookSubscription
from api.programs.loader import read_program_file
from api.services import bookings, contracts, identity, ledger, parties, programs, tickets, webhooks
from api.services.context import Actor, AppContext, FixedClock
from api.services.errors import Conflict, InsufficientBalance, NotFound, PermissionDenied, ValidationFailed
from api.signing import sign, signature_header, signature_problem, verify_signature
from tests.conftest import ADMIN, NOW, unique
from tests.webhook_receiver import Receiver, webhook_receiver

# ---- the signature scheme ----------------------------------------------------------------------------


def test_a_signature_verifies_its_body_and_nothing_else():
    body = b'{"id":"e1","type":"ticket.filed"}'
    now = time.time()
    header = signature_header("whsec_s3cret", body, int(now))
    assert verify_signature("whsec_s3cret", header, body)
    assert verify_signature("whsec_s3cret", header, body.decode())  # str and bytes alike
    assert not verify_signature("whsec_other", header, body)
    assert signature_problem("whsec_s3cret", header, body.replace(b"e1", b"e2")) == "no signature matches the body"
    assert not verify_signature("whsec_s3cret", header, body + b" ")
    # The timestamp is signed too: moving it breaks the signature.
    moved = header.replace(f"t={int(now)}", f"t={int(now) + 1}")
    assert not verify_signature("whsec_s3cret", moved, body)
    # Stripe's layout: t=<unix>,v1=<hex of HMAC-SHA256(secret, "<t>.<body>")>.
    assert header == f"t={int(now)},v1={sign('whsec_s3cret', int(now), body)}"
    import hashlib
    import hmac

    assert sign("k", 12, b"x") == hmac.new(b"k", b"12.x", hashlib.sha256).hexdigest()


def test_an_old_timestamp_is_a_replay_and_is_refused():
    body = b"{}"
    now = time.time()
    old = signature_header("k", body, int(now) - 301)
    assert not verify_signature("k", old, body)
    assert "outside the tolerance of 300 s" in (signature_problem("k", old, body) or "")
    assert verify_signature("k", signature_header("k", body, int(now) - 299), body)
    assert verify_signature("k", old, body, tolerance=600)
    assert not verify_signature("k", signature_header("k", body, int(now) + 400), body)  # from the future
    # Judged against the clock given, when one is.
    assert verify_signature("k", old, body, now=now - 301)


@pytest.mark.parametrize(
    "header",
    [None, "", "v1=abc", "t=123", "t=abc,v1=00", "t=-5,v1=00", f"t={10**15},v1=00", "x" * 5000],
)
def test_malformed_signature_headers_are_refused(header):
    assert not verify_signature("k", header, b"{}")


def test_any_v1_signature_may_match_while_a_secret_is_replaced():
    body, t = b"{}", int(time.time())
    header = f"t={t},v1={sign('old', t, body)},v1={sign('new', t, body)},v0=ignored"
    assert verify_signature("old", header, body) and verify_signature("new", header, body)


# ---- addresses and event types ------------------------------------------------------------------------

DEV = Settings()
PROD = Settings(environment="production")


@pytest.mark.parametrize(
    ("url", "settings"),
    [
        ("https://hooks.example.com/entitle", DEV),
        ("https://hooks.example.com:8443/entitle?x=1", PROD),
        ("http://127.0.0.1:9000/hook", DEV),
        ("http://localhost:9000/hook", DEV),
        ("http://[::1]:9000/hook", DEV),
        ("https://10.1.2.3/hook", DEV),  # development: anything over https
    ],
)
def test_receiver_addresses_accepted(url, settings):
    assert webhooks.check_url(url, settings) == url


@pytest.mark.parametrize(
    ("url", "settings", "says"),
    [
        ("ftp://example.com/x", DEV, "https://"),
        ("file:///etc/passwd", DEV, "https://"),
        ("javascript:alert(1)", DEV, "https://"),
        ("http://example.com/hook", DEV, "plain http"),
        ("http://127.0.0.1/hook", PROD, "plain http"),
        ("https://127.0.0.1/hook", PROD, "not a public address"),
        ("https://localhost/hook", PROD, "not a public address"),
        ("https://10.0.0.8/hook", PROD, "not a public address"),
        ("https://192.168.1.1/hook", PROD, "not a public address"),
        ("https://169.254.169.254/latest/meta-data", PROD, "not a public address"),
        ("https://[::1]/hook", PROD, "not a public address"),
        ("https://[::ffff:10.0.0.1]/hook", PROD, "not a public address"),
        ("https://[fd00::1]/hook", PROD, "not a public address"),
        ("https://metadata.internal/hook", PROD, "not a public address"),
        ("https://user:pw@example.com/hook", DEV, "user name or password"),
        ("https://example.com/hook#frag", DEV, "fragment"),
        ("https://example.com:99999/hook", DEV, "not a valid URL"),
        ("https://exa mple.com/hook", DEV, "spaces"),
        ("https://example.com/\x00", DEV, "control"),
        ("https://example.com/\u202e", DEV, "invisible"),
        ("https://example.com/" + "a" * 2000, DEV, "1 to 2000"),
        ("", DEV, "1 to 2000"),
        ("https:///nohost", DEV, "with a host"),
    ],
)
def test_receiver_addresses_refused(url, settings, says):
    with pytest.raises(ValidationFailed) as refused:
        webhooks.check_url(url, settings)
    assert refused.value.field == "url"
    assert says in refused.value.message


def test_event_types_are_checked():
    assert webhooks.check_event_types(["ticket.*", "entitlement.consumed", "ticket.*"]) == ["ticket.*", "entitlement.consumed"]
    assert webhooks.check_event_types(["*"]) == ["*"]
    for bad in ([], ["ticket"], ["tickets.*"], ["ticket.filed", "nope"], ["x"] * 0 + [f"t{i}" for i in range(60)]):
        with pytest.raises(ValidationFailed) as refused:
            webhooks.check_event_types(bad)
        assert refused.value.field == "eventTypes"
    assert webhooks.matches(["booking.*"], "booking.cancelled") and not webhooks.matches(["booking.*"], "report.queued")
    assert set(webhooks.BOOKING_EVENTS.values()) | set(webhooks.LEDGER_EVENTS.values()) <= set(webhooks.EVENT_TYPES)


def test_the_worker_runs_deliver_webhooks_after_the_jobs_that_queue_and_before_the_mail():
    names = [job.name for job in JOBS]
    assert names.index("deliver-webhooks") > names.index("monthly-reports")
    assert names[-1] == "deliver-outbox"


# ---- a database of the module's own, and the receiver ---------------------------------------------------


@pytest.fixture(scope="module")
def module_url(database_factory) -> str:  # type: ignore[no-untyped-def]
    url = database_factory.new()
    upgrade(url)
    return url


@pytest.fixture(scope="module")
async def module_db(module_url: str) -> AsyncIterator[Database]:
    url = module_url
    db = Database(url)
    ctx = AppContext(db=db, settings=Settings(database_url=url), clock=FixedClock(NOW))
    wanted = ("advisory-assure", "partner-support")
    parsed = [read_program_file(PROJECT_ROOT / "programs" / f"{code}.toml") for code in wanted]
    await programs.load_programs(ctx, ADMIN, parsed)
    yield db
    await db.dispose()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


@pytest.fixture
async def wctx(module_db: Database, module_url: str, receiver: Receiver, tmp_path) -> AsyncIterator[AppContext]:  # type: ignore[no-untyped-def]
    """The module's database, a clock of this test's own, quick retries; afterwards every subscription is
    revoked (its pending deliveries fail), so the next test starts with none."""
    settings = Settings(
        database_url=module_url,
        outbox_dir=tmp_path / "outbox", webhook_timeout_seconds=2.0, webhook_lease_seconds=30, webhook_retry_seconds=60,
        webhook_max_attempts=4,
    )
    ctx = AppContext(db=module_db, settings=settings, clock=FixedClock(NOW))
    receiver.answer, receiver.delay = 200, 0.0
    receiver.clear()
    yield ctx
    async with module_db.write() as session:
        await session.execute(update(WebhookSubscription).values(active=False))
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.status.in_([WebhookDeliveryStatus.PENDING, WebhookDeliveryStatus.SENDING]))
            .values(status=WebhookDeliveryStatus.FAILED, last_error="test over")
        )


def customer_actor(customer_id: uuid.UUID) -> Actor:
    return Actor(kind="customer", ref=f"test:customer:{customer_id}", name="Customer IT", customer_id=customer_id)


def partner_actor(partner_id: uuid.UUID) -> Actor:
    return Actor(kind="partner", ref=f"test:partner:{partner_id}", name="Partner IT", partner_id=partner_id)


async def subscribe(ctx: AppContext, receiver: Receiver, actor: Actor, events: list[str], endpoint: str | None = None):  # type: ignore[no-untyped-def]
    endpoint = endpoint or unique("hook")
    subscription, secret = await webhooks.create_subscription(
        ctx, actor, webhooks.NewSubscription(receiver.url(endpoint), events, f"test {endpoint}")
    )
    receiver.secrets[endpoint] = secret
    return subscription, endpoint


async def new_customer(ctx: AppContext, **fields):  # type: ignore[no-untyped-def]
    code = unique("wh-customer")
    return await parties.create_customer(ctx, ADMIN, parties.NewCustomer(code=code, name=code, **fields))


async def support_contract(ctx: AppContext, customer_id: uuid.UUID):  # type: ignore[no-untyped-def]
    return await contracts.create_contract(
        ctx, ADMIN,
        contracts.NewContract(
            reference=unique("WH-SUPPORT"), customer_id=customer_id, program_code="partner-support",
            plan_code="enterprise", effective_date=date(2026, 1, 1), end_date=date(2026, 12, 31),
            monthly_fee=Decimal("500.00"), currency="EUR", custom_allowances={"support-hours": 600},
        ),
    )


async def advisory_contract(ctx: AppContext, customer_id: uuid.UUID, plan: str = "small"):  # type: ignore[no-untyped-def]
    return await contracts.create_contract(
        ctx, ADMIN,
        contracts.NewContract(
            reference=unique("WH-ASSURE"), customer_id=customer_id, program_code="advisory-assure", plan_code=plan,
            effective_date=date(2026, 2, 15), end_date=date(2027, 2, 14), monthly_fee=Decimal("900.00"),
            currency="EUR", custom_allowances={"activities": 100} if plan == "custom" else {},
        ),
    )


async def consume(ctx: AppContext, contract_id: uuid.UUID, quantity: int = 1) -> ledger.LedgerOutcome:
    return await ledger.consume_entitlement(
        ctx, ADMIN, ledger.Consumption(contract_id, "activities", Decimal(quantity), reason="webhook test")
    )


async def deliveries_of(ctx: AppContext, subscription_id: uuid.UUID) -> list[WebhookDelivery]:
    async with ctx.db.read() as session:
        return list(
            await session.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.subscription_id == subscription_id)
                .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
            )
        )


async def attempts_of(ctx: AppContext, delivery_id: uuid.UUID) -> list[WebhookAttempt]:
    async with ctx.db.read() as session:
        return list(
            await session.scalars(
                select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id).order_by(WebhookAttempt.number)
            )
        )


# ---- emission, delivery, signatures ---------------------------------------------------------------------


async def test_every_kind_of_event_reaches_a_real_receiver_signed(wctx: AppContext, receiver: Receiver):
    customer = await new_customer(wctx, email="it@wh.example")
    subscription, endpoint = await subscribe(wctx, receiver, customer_actor(customer.id), ["*"])
    await support_contract(wctx, customer.id)
    advisory = await advisory_contract(wctx, customer.id, "custom")

    ticket = await tickets.open_ticket(wctx, ADMIN, tickets.NewTicket(customer.id, "question", "standard", "Webhook me"))
    await tickets.add_comment(wctx, ADMIN, ticket.id, "Looking into it")  # a public reply: commented + deducted
    await tickets.transition_ticket(wctx, ADMIN, ticket.id, "resolved")
    booked = await bookings.book_activity(
        wctx, customer_actor(customer.id), bookings.NewBooking(advisory.id, "advisory-call", date(2026, 4, 1))
    )
    await bookings.cancel_booking(wctx, ADMIN, booked.booking.id, "not needed")
    taken = await ledger.consume_entitlement(
        wctx, ADMIN, ledger.Consumption(advisory.id, "activities", Decimal(2), reason="workshop")
    )
    await ledger.reverse_entry(wctx, ADMIN, taken.entry.id, reason="mistake")
    await ledger.adjust_entitlement(
        wctx, ADMIN, ledger.Adjustment(advisory.id, "activities", Decimal(1), date(2026, 3, 1), "correction")
    )
    queued = await deliveries_of(wctx, subscription.id)
    expected = [
        "ticket.filed", "ticket.commented", "entitlement.consumed", "ticket.transitioned", "booking.created",
        "entitlement.consumed", "entitlement.reversed", "booking.cancelled", "entitlement.consumed",
        "entitlement.reversed", "entitlement.adjusted",
    ]
    assert sorted(d.event_type for d in queued) == sorted(expected)
    assert all(d.status == WebhookDeliveryStatus.PENDING for d in queued)

    run = await deliver_webhooks(wctx)
    assert run.delivered >= len(expected) and run.failed == 0
    arrived = receiver.at(endpoint)
    assert len(arrived) == len(expected)
    assert all(a.problem is None and a.answered == 200 for a in arrived), [a.problem for a in arrived]
    assert sorted(receiver.types(endpoint)) == sorted(expected)
    assert set(receiver.delivered(endpoint).values()) == {1}

    # The body is the envelope, the headers name it, the id is the delivery's event id.
    by_event = {str(d.event_id): d for d in await deliveries_of(wctx, subscription.id)}
    for arrival in arrived:
        body = arrival.payload
        assert body["id"] == arrival.event_id and body["type"] == arrival.event_type
        assert body["customer_id"] == str(customer.id)
        assert arrival.body.decode() == by_event[arrival.event_id].payload
    filed = next(a.payload for a in arrived if a.event_type == "ticket.filed")
    assert filed["data"]["ticket"]["id"] == str(ticket.id) and filed["data"]["ticket"]["subject"] == "Webhook me"
    consumed = next(
        a.payload for a in arrived
        if a.event_type == "entitlement.consumed" and a.payload["data"]["entry"]["reason"] == "workshop"
    )
    assert consumed["data"]["entry"]["quantity"] == 2 and consumed["data"]["period"]["allowance"] == 100

    for delivery in await deliveries_of(wctx, subscription.id):
        assert delivery.status == WebhookDeliveryStatus.DELIVERED and delivery.attempts == 1
        assert delivery.last_response_code == 200 and delivery.delivered_at == NOW
        [attempt] = await attempts_of(wctx, delivery.id)
        assert (attempt.number, attempt.outcome, attempt.response_code) == (1, "delivered", 200)
        assert attempt.finished_at is not None and attempt.duration_ms is not None

    # Nothing is due any more: a second run sends nothing.
    again = await deliver_webhooks(wctx)
    assert again.leased == 0 and len(receiver.at(endpoint)) == len(expected)


async def test_scheduling_and_delivering_a_booking_are_events(wctx: AppContext, receiver: Receiver):
    customer = await new_customer(wctx)
    subscription, endpoint = await subscribe(wctx, receiver, customer_actor(customer.id), ["booking.*"])
    advisory = await advisory_contract(wctx, customer.id, "custom")
    booked = await bookings.book_activity(wctx, ADMIN, bookings.NewBooking(advisory.id, "advisory-call", NOW.date()))
    staff = ADMIN
    user = await identity.create_user(
        wctx, ADMIN, identity.NewUser(email=f"{unique('wh-staff')}@wh.example", name="Webhook Staff",
                                      password="a long password, really", kind=UserKind.STAFF, staff_role=StaffRole.ADMIN)
    )
    await bookings.schedule_booking(wctx, staff, bookings.Schedule(booked.booking.id, NOW, staff_email=user.email))
    await bookings.schedule_booking(
        wctx, staff, bookings.Schedule(booked.booking.id, NOW + timedelta(hours=1), staff_email=user.email)
    )
    wctx.clock.instant = NOW + timedelta(hours=2)  # type: ignore[attr-defined]
    await bookings.deliver_booking(wctx, staff, booked.booking.id)
    await deliver_webhooks(wctx)
    # Sent concurrently: the order of arrival is not the order of events (receivers order by created_at).
    assert sorted(receiver.types(endpoint)) == sorted(
        ["booking.created", "booking.scheduled", "booking.rescheduled", "booking.delivered"]
    )
    last = next(a for a in receiver.at(endpoint) if a.event_type == "booking.delivered").payload["data"]["booking"]
    assert last["status"] == "delivered" and last["id"] == str(booked.booking.id)
    assert all(d.event_type.startswith("booking.") for d in await deliveries_of(wctx, subscription.id))


async def test_deliveries_survive_a_receiver_outage_and_arrive_once_each(wctx: AppContext, receiver: Receiver):
    customer = await new_customer(wctx)
    subscription, endpoint = await subscribe(wctx, receiver, customer_actor(customer.id), ["entitlement.*"])
    contract = await advisory_contract(wctx, customer.id)
    for _ in range(3):
        await consume(wctx, contract.id)

    receiver.answer = 503  # the receiver is down
    first = await deliver_webhooks(wctx)
    assert (first.delivered, first.retrying) == (0, 3)
    pending = await deliveries_of(wctx, subscription.id)
    assert {d.status for d in pending} == {WebhookDeliveryStatus.PENDING}
    assert {d.next_attempt_at for d in pending} == {NOW + timedelta(seconds=60)}  # the first backoff
    assert {d.last_response_code for d in pending} == {503}
    assert all("HTTP 503: receiver unavailable" in (d.last_error or "") for d in pending)

    # Not due yet: nothing is sent before the backoff has passed.
    assert (await deliver_webhooks(wctx)).leased == 0
    wctx.clock.instant = NOW + timedelta(seconds=60)  # type: ignore[attr-defined]
    second = await deliver_webhooks(wctx)
    assert second.retrying == 3
    assert {d.next_attempt_at for d in await deliveries_of(wctx, subscription.id)} == {
        NOW + timedelta(seconds=60 + 120)  # doubled
    }

    receiver.answer = 200  # back up
    wctx.clock.instant = NOW + timedelta(seconds=180)  # type: ignore[attr-defined]
    third = await deliver_webhooks(wctx)
    assert third.delivered == 3
    assert receiver.delivered(endpoint) == {a.event_id: 1 for a in receiver.at(endpoint)}  # each once
    assert len(receiver.delivered(endpoint)) == 3
    assert len(receiver.at(endpoint)) == 9  # 3 events × (503, 503, 200)
    assert all(a.problem is None for a in receiver.at(endpoint))
    for delivery in await deliveries_of(wctx, subscription.id):
        assert delivery.status == WebhookDeliveryStatus.DELIVERED and delivery.attempts == 3
        history = await attempts_of(wctx, delivery.id)
        assert [(a.number, a.outcome, a.response_code) for a in history] == [
            (1, "failed", 503), (2, "failed", 503), (3, "delivered", 200)
        ]
        assert "503" in (history[0].error or "")
    wctx.clock.instant = NOW + timedelta(days=1)  # type: ignore[attr-defined]
    assert (await deliver_webhooks(wctx)).leased == 0  # nothing more to send, ever


async def test_a_delivery_fails_after_the_last_attempt_and_staff_replay_it(wctx: AppContext, receiver: Receiver):
    customer = await new_customer(wctx)
    subscription, endpoint = await subscribe(wctx, receiver, customer_actor(customer.id), ["entitlement.consumed"])
    contract = await advisory_contract(wctx, customer.id)
    await consume(wctx, contract.id)
    receiver.answer = 500
    for minutes in range(4):  # max attempts: 4
        wctx.clock.instant = NOW + timedelta(hours=minutes * 7)  # type: ignore[attr-defined]
        await deliver_webhooks(wctx)
    [delivery] = await deliveries_of(wctx, subscription.id)
    assert delivery.status == WebhookDeliveryStatus.FAILED and delivery.attempts == 4
    assert delivery.failed_at is not None and delivery.last_response_code == 500
    assert len(await attempts_of(wctx, delivery.id)) == 4

    # Owners read; only staff replay.
    with pytest.raises(PermissionDenied):
        await webhooks.replay_delivery(wctx, customer_actor(customer.id), delivery.id)
    engineer = Actor(kind="staff", ref="test:support", name="Support", roles=frozenset({"support_engineer"}))
    receiver.answer = 200
    replayed, attempts = await webhooks.replay_delivery(wctx, engineer, delivery.id)
    assert replayed.status == WebhookDeliveryStatus.PENDING and replayed.attempts == 0 and replayed.replays == 1
    assert len(attempts) == 4
    with pytest.raises(Conflict):  # already waiting
        await webhooks.replay_delivery(wctx, engineer, delivery.id)
    await deliver_webhooks(wctx)
    [delivery] = await deliveries_of(wctx, subscription.id)
    assert delivery.status == WebhookDeliveryStatus.DELIVERED
    assert [a.number for a in await attempts_of(wctx, delivery.id)] == [1, 2, 3, 4, 5]
    assert receiver.delivered(endpoint) == {str(delivery.event_id): 1}

    # A delivered one may be replayed too: the same event id and body again.
    await webhooks.replay_delivery(wctx, engineer, delivery.id)
    await deliver_webhooks(wctx)
    assert receiver.delivered(endpoint) == {str(delivery.event_id): 2}
    bodies = {a.body for a in receiver.at(endpoint)}
    assert len(bodies) == 1
    with pytest.raises(NotFound):
        await webhooks.replay_delivery(wctx, engineer, uuid.uuid4())


async def test_a_customer_subscription_never_receives_another_customers_events(wctx: AppContext, receiver: Receiver):
    alpha, beta = await new_customer(wctx), await new_customer(wctx)
    alpha_sub, alpha_end = await subscribe(wctx, receiver, customer_actor(alpha.id), ["*"])
    beta_sub, beta_end = await subscribe(wctx, receiver, customer_actor(beta.id), ["*"])
    provider_sub, provider_end = await subscribe(wctx, receiver, ADMIN, ["entitlement.*", "ticket.*"])
    alpha_contract, beta_contract = await advisory_contract(wctx, alpha.id), await advisory_contract(wctx, beta.id)
    await support_contract(wctx, beta.id)
    await consume(wctx, alpha_contract.id)
    await consume(wctx, beta_contract.id, 2)
    await tickets.open_ticket(wctx, ADMIN, tickets.NewTicket(beta.id, "question", "standard", "Beta's secret"))
    await deliver_webhooks(wctx)

    assert {a.payload["customer_id"] for a in receiver.at(alpha_end)} == {str(alpha.id)}
    assert receiver.types(alpha_end) == ["entitlement.consumed"]
    assert {a.payload["customer_id"] for a in receiver.at(beta_end)} == {str(beta.id)}
    assert sorted(receiver.types(beta_end)) == ["entitlement.consumed", "ticket.filed"]
    assert all(b"Beta's secret" not in a.body for a in receiver.at(alpha_end))
    # The provider hears of both.
    assert {a.payload["customer_id"] for a in receiver.at(provider_end)} == {str(alpha.id), str(beta.id)}
    assert len(await deliveries_of(wctx, alpha_sub.id)) == 1 and len(await deliveries_of(wctx, beta_sub.id)) == 2
    assert len(await deliveries_of(wctx, provider_sub.id)) == 3


async def test_a_partner_subscription_receives_only_what_its_links_allow(wctx: AppContext, receiver: Receiver):
    linked, other, tickets_only = await new_customer(wctx), await new_customer(wctx), await new_customer(wctx)
    partner = await parties.create_partner(wctx, ADMIN, parties.NewPartner(code=unique("wh-partner"), name="Partner"))
    await parties.link_partner(
        wctx, ADMIN, partner_id=partner.id, customer_id=linked.id, managed=True, production_access=False,
        can_file_tickets=True, can_view_entitlements=True,
    )
    await parties.link_partner(
        wctx, ADMIN, partner_id=partner.id, customer_id=tickets_only.id, managed=False, production_access=False,
        can_file_tickets=True, can_view_entitlements=False,
    )
    subscription, endpoint = await subscribe(wctx, receiver, partner_actor(partner.id), ["*"])
    contracts_by = {c.id: await advisory_contract(wctx, c.id) for c in (linked, other, tickets_only)}
    for customer in (linked, other, tickets_only):
        await support_contract(wctx, customer.id)
        await consume(wctx, contracts_by[customer.id].id)
        await tickets.open_ticket(wctx, ADMIN, tickets.NewTicket(customer.id, "question", "standard", "Partner test"))
    await deliver_webhooks(wctx)

    seen = sorted((a.payload["customer_id"], a.event_type) for a in receiver.at(endpoint))
    assert seen == sorted([
        (str(linked.id), "entitlement.consumed"), (str(linked.id), "ticket.filed"),
        (str(tickets_only.id), "ticket.filed"),  # its link lets it see tickets, not entitlements
    ])
    assert all(a.problem is None for a in receiver.at(endpoint))

    # The link is narrowed after an event was queued and before it is sent: the policy is asked again, and
    # the delivery fails without a request.
    receiver.clear()
    await consume(wctx, contracts_by[linked.id].id)
    async with wctx.db.write() as session:
        await session.execute(
            update(PartnerCustomer)
            .where(PartnerCustomer.partner_id == partner.id, PartnerCustomer.customer_id == linked.id)
            .values(can_view_entitlements=False)
        )
    run = await deliver_webhooks(wctx)
    assert run.refused == 1 and receiver.at(endpoint) == []
    refused = [d for d in await deliveries_of(wctx, subscription.id) if d.status == WebhookDeliveryStatus.FAILED]
    assert len(refused) == 1 and "no longer sees" in (refused[0].last_error or "")
    assert await attempts_of(wctx, refused[0].id) == []


async def test_internal_comments_go_to_the_provider_alone(wctx: AppContext, receiver: Receiver):
    customer = await new_customer(wctx)
    await support_contract(wctx, customer.id)
    _, customer_end = await subscribe(wctx, receiver, customer_actor(customer.id), ["ticket.commented"])
    _, provider_end = await subscribe(wctx, receiver, ADMIN, ["ticket.commented"])
    ticket = await tickets.open_ticket(wctx, ADMIN, tickets.NewTicket(customer.id, "question", "standard", "Internal"))
    await tickets.add_comment(wctx, ADMIN, ticket.id, "Staff only: the customer misconfigured it", internal=True)
    await tickets.add_comment(wctx, customer_actor(customer.id), ticket.id, "Any news?")
    await deliver_webhooks(wctx)
    assert [a.payload["data"]["comment"]["body"] for a in receiver.at(customer_end)] == ["Any news?"]
    assert sorted(a.payload["data"]["comment"]["internal"] for a in receiver.at(provider_end)) == [False, True]


async def test_a_refused_change_queues_no_event_and_a_revoked_subscription_gets_nothing(wctx: AppContext, receiver: Receiver):
    customer = await new_customer(wctx)
    subscription, endpoint = await subscribe(wctx, receiver, customer_actor(customer.id), ["*"])
    contract = await advisory_contract(wctx, customer.id)  # small: 5 activities a quarter
    with pytest.raises(InsufficientBalance):
        await consume(wctx, contract.id, 6)
    assert await deliveries_of(wctx, subscription.id) == []  # the event rolled back with the change

    await consume(wctx, contract.id)
    revoked = await webhooks.revoke_subscription(wctx, customer_actor(customer.id), subscription.id)
    assert not revoked.active and revoked.revoked_at == NOW
    [pending] = await deliveries_of(wctx, subscription.id)
    assert pending.status == WebhookDeliveryStatus.FAILED and pending.last_error == "the subscription was revoked"
    await consume(wctx, contract.id)
    assert len(await deliveries_of(wctx, subscription.id)) == 1  # nothing new queued
    await deliver_webhooks(wctx)
    assert receiver.at(endpoint) == []
    with pytest.raises(Conflict):  # nothing is replayed to a revoked subscription
        await webhooks.replay_delivery(wctx, ADMIN, pending.id)
    # Revoking again changes nothing; another customer cannot see it at all.
    assert (await webhooks.revoke_subscription(wctx, customer_actor(customer.id), subscription.id)).revoked_at == NOW
    stranger = await new_customer(wctx)
    with pytest.raises(NotFound):
        await webhooks.revoke_subscription(wctx, customer_actor(stranger.id), subscription.id)


async def test_a_delivery_left_in_doubt_by_a_dead_sender_is_sent_again_with_the_same_event(
    wctx: AppContext, receiver: Receiver
):
    customer = await new_customer(wctx)
    subscription, endpoint = await subscribe(wctx, receiver, customer_actor(customer.id), ["*"])
    await consume(wctx, (await advisory_contract(wctx, customer.id)).id)
    [delivery] = await deliveries_of(wctx, subscription.id)
    # A sender leased it, recorded its attempt and died before recording the outcome.
    async with wctx.db.write() as session:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery.id)
            .values(status=WebhookDeliveryStatus.SENDING, lease_owner="dead:1", leased_until=NOW + timedelta(seconds=30),
                    next_attempt_at=NOW + timedelta(seconds=30), attempts=1)
        )
        session.add(WebhookAttempt(delivery_id=delivery.id, number=1, started_at=NOW))
    assert (await deliver_webhooks(wctx)).leased == 0  # its lease still runs
    wctx.clock.instant = NOW + timedelta(seconds=31)  # type: ignore[attr-defined]
    assert (await deliver_webhooks(wctx)).delivered == 1
    [arrival] = receiver.at(endpoint)
    assert arrival.event_id == str(delivery.event_id)
    assert [(a.number, a.outcome) for a in await attempts_of(wctx, delivery.id)] == [(1, None), (2, "delivered")]


async def test_two_senders_at_once_deliver_each_event_once(wctx: AppContext, receiver: Receiver):
    customer = await new_customer(wctx)
    subscription, endpoint = await subscribe(wctx, receiver, customer_actor(customer.id), ["*"])
    contract = await advisory_contract(wctx, customer.id, "custom")
    for _ in range(12):
        await consume(wctx, contract.id)
    receiver.delay = 0.05
    second_db = Database(wctx.settings.database_url)
    try:
        other = replace(wctx, db=second_db)
        runs = await asyncio.gather(
            deliver_webhooks(wctx, owner="sender-a", batch=3), deliver_webhooks(other, owner="sender-b", batch=3)
        )
    finally:
        await second_db.dispose()
    assert sum(r.delivered for r in runs) == 12
    assert receiver.delivered(endpoint) == {str(d.event_id): 1 for d in await deliveries_of(wctx, subscription.id)}


async def test_a_slow_receiver_times_out_and_is_retried(wctx: AppContext, receiver: Receiver):
    customer = await new_customer(wctx)
    subscription, _ = await subscribe(wctx, receiver, customer_actor(customer.id), ["*"])
    await consume(wctx, (await advisory_contract(wctx, customer.id)).id)
    receiver.delay = 3.0  # the timeout is 2 s
    run = await deliver_webhooks(wctx)
    assert run.retrying == 1
    [delivery] = await deliveries_of(wctx, subscription.id)
    assert delivery.status == WebhookDeliveryStatus.PENDING and delivery.last_response_code is None
    assert delivery.last_error == "no answer within 2 s"


async def test_in_production_a_name_resolving_to_a_private_address_is_not_sent_to(wctx: AppContext, receiver: Receiver):
    customer = await new_customer(wctx)
    subscription, endpoint = await subscribe(wctx, receiver, customer_actor(customer.id), ["*"])
    await consume(wctx, (await advisory_contract(wctx, customer.id)).id)
    # As if created with a public name that now resolves to loopback (DNS rebinding).
    async with wctx.db.write() as session:
        await session.execute(
            update(WebhookSubscription)
            .where(WebhookSubscription.id == subscription.id)
            .values(url=f"https://localhost:{receiver.port}/hooks/{endpoint}")
        )
    production = replace(wctx, settings=replace(wctx.settings, environment="production"))
    run = await deliver_webhooks(production)
    assert run.retrying == 1 and receiver.at(endpoint) == []
    [delivery] = await deliveries_of(wctx, subscription.id)
    assert "not a public address" in (delivery.last_error or "")


async def test_subscriptions_per_owner_are_limited(wctx: AppContext, receiver: Receiver):
    customer = await new_customer(wctx)
    limited = replace(wctx, settings=replace(wctx.settings, webhook_max_subscriptions=2))
    first, _ = await subscribe(limited, receiver, customer_actor(customer.id), ["*"])
    await subscribe(limited, receiver, customer_actor(customer.id), ["*"])
    with pytest.raises(Conflict) as refused:
        await subscribe(limited, receiver, customer_actor(customer.id), ["*"])
    assert "ENTITLE_WEBHOOK_MAX_SUBSCRIPTIONS = 2" in refused.value.message
    await webhooks.revoke_subscription(limited, customer_actor(customer.id), first.id)
    await subscribe(limited, receiver, customer_actor(customer.id), ["*"])  # room again
    # Read-only callers and client managers do not subscribe.
    with pytest.raises(PermissionDenied):
        await subscribe(wctx, receiver, replace(customer_actor(customer.id), read_only=True), ["*"])
    manager = Actor(kind="staff", ref="test:cm", name="CM", roles=frozenset({"client_manager"}))
    with pytest.raises(PermissionDenied):
        await subscribe(wctx, receiver, manager, ["*"])


async def test_lists_show_each_side_its_own_and_never_the_secret(wctx: AppContext, receiver: Receiver):
    alpha, beta = await new_customer(wctx), await new_customer(wctx)
    mine, _ = await subscribe(wctx, receiver, customer_actor(alpha.id), ["entitlement.*"])
    theirs, _ = await subscribe(wctx, receiver, customer_actor(beta.id), ["entitlement.*"])
    await consume(wctx, (await advisory_contract(wctx, alpha.id)).id)
    await consume(wctx, (await advisory_contract(wctx, beta.id)).id)
    page = await webhooks.list_subscriptions(wctx, customer_actor(alpha.id))
    assert [s.id for s in page.subscriptions] == [mine.id]
    staff = await webhooks.list_subscriptions(wctx, ADMIN, first=200)
    assert {mine.id, theirs.id} <= {s.id for s in staff.subscriptions}
    deliveries = await webhooks.list_deliveries(wctx, customer_actor(alpha.id))
    assert {d.subscription_id for d in deliveries.deliveries} == {mine.id}
    assert (await webhooks.list_deliveries(wctx, customer_actor(alpha.id), subscription_id=theirs.id)).deliveries == []
    one = await webhooks.list_deliveries(wctx, ADMIN, first=1, customer_id=beta.id)
    assert len(one.deliveries) == 1 and one.deliveries[0].subscription_id == theirs.id
    # Paging: the cursor moves on.
    await consume(wctx, (await advisory_contract(wctx, alpha.id)).id)
    first = await webhooks.list_deliveries(wctx, customer_actor(alpha.id), first=1)
    second = await webhooks.list_deliveries(wctx, customer_actor(alpha.id), first=1, after=first.end_cursor)
    assert first.has_next_page and first.deliveries[0].id != second.deliveries[0].id


async def test_the_monthly_report_job_emits_report_queued(wctx: AppContext, receiver: Receiver):
    customer = await new_customer(wctx, email="reports@wh.example")
    subscription, endpoint = await subscribe(wctx, receiver, customer_actor(customer.id), ["report.*"])
    contract = await advisory_contract(wctx, customer.id)
    run = await queue_monthly_reports(wctx, date(2026, 2, 1))
    assert run.queued >= 1
    again = await queue_monthly_reports(wctx, date(2026, 2, 1))
    assert again.queued == 0
    [delivery] = await deliveries_of(wctx, subscription.id)  # once, however often the job runs
    await deliver_webhooks(wctx)
    [arrival] = receiver.at(endpoint)
    report = arrival.payload["data"]["report"]
    assert report == {
        "contract_id": str(contract.id), "contract_reference": contract.reference, "month": "2026-02",
        "csv_path": f"/reports/{contract.id}/2026-02.csv", "sent_to": "customer",
    }
    assert delivery.event_type == "report.queued"


async def test_old_finished_deliveries_are_purged(wctx: AppContext, receiver: Receiver):
    customer = await new_customer(wctx)
    subscription, _ = await subscribe(wctx, receiver, customer_actor(customer.id), ["*"])
    await consume(wctx, (await advisory_contract(wctx, customer.id)).id)
    await deliver_webhooks(wctx)
    [delivery] = await deliveries_of(wctx, subscription.id)
    wctx.clock.instant = NOW + timedelta(days=29)  # type: ignore[attr-defined]
    await deliver_webhooks(wctx)
    assert len(await deliveries_of(wctx, subscription.id)) == 1
    wctx.clock.instant = NOW + timedelta(days=31)  # type: ignore[attr-defined]
    run = await deliver_webhooks(wctx)
    assert run.purged >= 1 and await deliveries_of(wctx, subscription.id) == []
    async with wctx.db.read() as session:
        assert await session.scalar(
            select(func.count()).select_from(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id)
        ) == 0


def test_payloads_are_plain_json():
    event = webhooks.Event("booking.created", uuid.uuid4(), {"when": NOW, "day": date(2026, 1, 2), "n": Decimal("1.5")})
    body = json.loads(webhooks._body(uuid.uuid4(), event, NOW))
    assert body["created_at"] == "2026-03-10T12:00:00Z" and body["data"] == {
        "when": "2026-03-10T12:00:00Z", "day": "2026-01-02", "n": "1.5"
    }


async def test_a_request_that_cannot_even_be_made_is_a_failed_attempt(wctx: AppContext, receiver: Receiver):
    customer = await new_customer(wctx)
    subscription, _ = await subscribe(wctx, receiver, customer_actor(customer.id), ["*"])
    await consume(wctx, (await advisory_contract(wctx, customer.id)).id)
    async with wctx.db.write() as session:  # a host no resolver accepts (a label longer than 63 characters)
        await session.execute(
            update(WebhookSubscription)
            .where(WebhookSubscription.id == subscription.id)
            .values(url="https://" + "a" * 300 + ".example/hook")
        )
    run = await deliver_webhooks(wctx)
    assert run.retrying == 1
    [delivery] = await deliveries_of(wctx, subscription.id)
    assert delivery.status == WebhookDeliveryStatus.PENDING and delivery.last_error
    [attempt] = await attempts_of(wctx, delivery.id)
    assert attempt.outcome == "failed" and attempt.error == delivery.last_error
