"""GraphQL authentication: bearer tokens (malformed, unknown, revoked, expired, read-only), session
cookies with their CSRF header, users and tokens managed over the API, and the audit log it writes."""

from __future__ import annotations

import hashlib
import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from api.auth import CSRF_HEADER, SESSION_COOKIE
from api.config import PROJECT_ROOT, Settings
from api.graphql.schema import build_schema
from api.models import (
    ApiToken,
    OutboxMessage,
    OutboxStatus,
    StaffRole,
    TokenAccess,
    TokenScope,
    User,
    UserKind,
    WebhookDelivery,
    WebhookDeliveryStatus,
)
from api.services import (
    bookings,
    calendar_feeds,
    identity,
    ledger,
    on_call,
    outbox,
    parties,
    tickets,
    webhooks,
)
from api.services.context import Actor, AppContext
from tests.conftest import ADMIN, ADMIN_EMAIL, NOW, unique
from tests.graphql.conftest import PASSWORD, Caller, table_counts

NO_CREDENTIALS = "authentication required: send 'Authorization: Bearer <token>' or log in"
ME = "{ me { kind name roles customerId partnerId readOnly } }"

USERS = """query($after: String) {
  users(first: 20, after: $after) { edges { node { email kind } } pageInfo { hasNextPage endCursor } }
}"""


def assert_refused(response: httpx.Response, status: int, code: str, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"errors": [{"message": message, "extensions": {"code": code}}]}
    if status == 401:
        assert response.headers["www-authenticate"] == 'Bearer realm="entitle"'


# ---- no or bad credentials ----------------------------------------------------------------------


async def test_no_credentials_is_401(connect, ctx):
    anonymous = connect.anonymous()
    before = await table_counts(ctx)
    for query in (ME, f'mutation {{ createCustomer(input: {{code: "{unique("anon")}", name: "x"}}) {{ __typename }} }}'):
        assert_refused(await anonymous.post(query), 401, "UNAUTHENTICATED", NO_CREDENTIALS)
    assert await table_counts(ctx) == before


@pytest.mark.parametrize("header", ["Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer    ", "Token ent_abc_def", "ent_abc_def"])
async def test_a_bad_authorization_scheme_is_401(connect, header):
    response = await connect.anonymous({"Authorization": header}).post(ME)
    assert_refused(response, 401, "UNAUTHENTICATED", "send the API token as 'Authorization: Bearer <token>'")


async def test_a_bearer_header_wins_over_a_session_and_a_bad_one_is_refused_even_so(connect, admin_login):
    caller = connect.anonymous({"Authorization": "Basic abc", CSRF_HEADER: admin_login.csrf_token})
    caller.http.cookies.set(SESSION_COOKIE, admin_login.session_secret)
    assert (await caller.post(ME)).status_code == 401


@pytest.mark.parametrize(
    ("presented", "message"),
    [
        ("garbage", "the bearer token is malformed: expected ent_<prefix>_<secret>"),
        ("ent_only-two", "the bearer token is malformed: expected ent_<prefix>_<secret>"),
        ("xyz_abcdef123456_secret", "the bearer token is malformed: expected ent_<prefix>_<secret>"),
        ("ent_abcdef123456_not-a-real-secret", "the bearer token is not valid"),
    ],
)
async def test_malformed_and_unknown_tokens_are_401(connect, presented, message):
    assert_refused(await connect.bearer(presented).post(ME), 401, "UNAUTHENTICATED", message)


async def test_a_known_prefix_with_the_wrong_secret_is_401(connect):
    _, token, _ = await connect.token()
    response = await connect.bearer(f"ent_{token.prefix}_{'x' * 43}").post(ME)
    assert_refused(response, 401, "UNAUTHENTICATED", "the bearer token is not valid")


# ---- tokens through their life ------------------------------------------------------------------

CREATE_TOKEN = """
mutation($input: CreateApiTokenInput!) {
  createApiToken(input: $input) {
    __typename
    ... on CreateApiTokenSuccess { secret token { id name prefix scope access customerId partnerId createdAt expiresAt revokedAt lastUsedAt } }
    ... on UserError { code message field }
  }
}
"""
REVOKE_TOKEN = """
mutation($id: ID!) {
  revokeApiToken(id: $id) {
    __typename
    ... on RevokeApiTokenSuccess { token { id revokedAt } }
    ... on UserError { code message field }
  }
}
"""
TOKENS = "{ apiTokens { id name prefix scope access revokedAt lastUsedAt } }"


async def test_a_token_secret_is_returned_once_and_never_again(gql, connect, ctx, make_customer):
    customer = await make_customer()
    name = unique("integration")
    result = (await gql(CREATE_TOKEN, {"input": {
        "name": name, "scope": "CUSTOMER", "access": "READ", "customerId": str(customer.id),
    }}))["createApiToken"]
    assert result["__typename"] == "CreateApiTokenSuccess"
    secret, token = result["secret"], result["token"]
    assert token == {
        "id": token["id"], "name": name, "prefix": token["prefix"], "scope": "customer", "access": "read",
        "customerId": str(customer.id), "partnerId": None, "createdAt": "2026-03-10T12:00:00+00:00",
        "expiresAt": None, "revokedAt": None, "lastUsedAt": None,
    }
    assert secret.startswith(f"ent_{token['prefix']}_")

    # The list has no secret field at all, and nothing in it is the secret or a part of it.
    tokens = await gql(TOKENS)
    [listed] = [t for t in tokens["apiTokens"] if t["id"] == token["id"]]
    assert listed["prefix"] == token["prefix"]
    raw = secret.split("_", 2)[2]
    assert raw not in str(tokens)
    body = await gql("{ apiTokens { secret } }", allow_errors=True)
    assert body["errors"][0]["message"] == "Cannot query field 'secret' on type 'ApiToken'."

    async with ctx.db.read() as session:
        row = await session.get(ApiToken, uuid.UUID(token["id"]))
    assert row.secret_hash != secret and raw not in row.secret_hash
    assert row.secret_hash == hashlib.sha256(raw.encode()).hexdigest()

    # The secret authenticates as the customer, read only.
    me = (await connect.bearer(secret).data(ME))["me"]
    assert me == {"kind": "customer", "name": f"API token {name!r}", "roles": [], "customerId": str(customer.id),
                  "partnerId": None, "readOnly": True}


async def test_a_revoked_token_is_401_at_once(gql, connect):
    result = (await gql(CREATE_TOKEN, {"input": {"name": unique("t"), "scope": "PROVIDER", "access": "READ_WRITE"}}))
    secret, token_id = result["createApiToken"]["secret"], result["createApiToken"]["token"]["id"]
    caller = connect.bearer(secret)
    assert (await caller.data(ME))["me"]["roles"] == ["integrator"]

    revoked = (await gql(REVOKE_TOKEN, {"id": token_id}))["revokeApiToken"]
    assert revoked == {"__typename": "RevokeApiTokenSuccess", "token": {"id": token_id, "revokedAt": "2026-03-10T12:00:00+00:00"}}
    response = await caller.post(ME)
    assert_refused(response, 401, "UNAUTHENTICATED", "the bearer token was revoked at 2026-03-10T12:00:00+00:00")
    assert "revoked" in response.json()["errors"][0]["message"]

    missing = str(uuid.uuid4())
    assert (await gql(REVOKE_TOKEN, {"id": missing}))["revokeApiToken"] == {
        "__typename": "NotFoundError", "code": "NOT_FOUND", "message": f"API token {missing} does not exist", "field": "id",
    }


async def test_an_expired_token_is_401(gql, connect, clock):
    expires = (NOW + timedelta(hours=1)).isoformat()
    result = (await gql(CREATE_TOKEN, {"input": {
        "name": unique("t"), "scope": "PROVIDER", "access": "READ", "expiresAt": expires,
    }}))["createApiToken"]
    assert result["token"]["expiresAt"] == "2026-03-10T13:00:00+00:00"
    caller = connect.bearer(result["secret"])
    clock.instant = NOW + timedelta(minutes=59, seconds=59)
    assert (await caller.data(ME))["me"]["readOnly"] is True
    clock.instant = NOW + timedelta(hours=1, seconds=1)
    response = await caller.post(ME)
    assert_refused(response, 401, "UNAUTHENTICATED", "the bearer token expired at 2026-03-10T13:00:00+00:00")

    past = (await gql(CREATE_TOKEN, {"input": {
        "name": unique("t"), "scope": "PROVIDER", "access": "READ", "expiresAt": NOW.isoformat(),
    }}))["createApiToken"]
    assert past == {"__typename": "ValidationError", "code": "INVALID", "message": "the expiry must be in the future",
                    "field": "expiresAt"}


async def test_token_refusals_write_nothing(gql, ctx, make_customer):
    customer = await make_customer()
    before = await table_counts(ctx)
    cases = [
        ({"scope": "CUSTOMER", "access": "READ"}, "ValidationError", "customerId"),
        ({"scope": "PROVIDER", "access": "READ", "customerId": str(customer.id)}, "ValidationError", "scope"),
        ({"scope": "PARTNER", "access": "READ", "partnerId": str(uuid.uuid4())}, "NotFoundError", "partnerId"),
        ({"scope": "CUSTOMER", "access": "READ", "customerId": "garbage"}, "NotFoundError", "customerId"),
    ]
    for fields, typename, field in cases:
        result = (await gql(CREATE_TOKEN, {"input": {"name": unique("t"), **fields}}))["createApiToken"]
        assert (result["__typename"], result["field"]) == (typename, field), result
    assert await table_counts(ctx) == before


# ---- a read-only token may query but not change anything ---------------------------------------

RESULT = "{ __typename ... on UserError { code message field } }"


async def mutations(ctx: AppContext, make_contract) -> dict[str, tuple[str, dict[str, Any]]]:  # type: ignore[no-untyped-def]
    """One valid request per mutation, on real objects."""
    contract = await make_contract()
    entry = await ledger.consume_entitlement(ctx, ADMIN, ledger.Consumption(contract.id, "activities", Decimal(1)))
    partner = await parties.create_partner(ctx, ADMIN, parties.NewPartner(code=unique("p"), name="P"))
    token, _ = await identity.create_token(ctx, ADMIN, identity.NewToken("victim", TokenScope.PROVIDER, TokenAccess.READ))
    program = (PROJECT_ROOT / "programs" / "advisory-assure.toml").read_text().replace(
        'code = "advisory-assure"', f'code = "{unique("ro-program")}"', 1
    )
    # Tickets need a plan with ticket types: another customer, on partner-support.
    support = await make_contract(
        program="partner-support", plan="enterprise", effective=date(2026, 1, 1), custom_allowances={"support-hours": 600}
    )
    ticket = await tickets.open_ticket(
        ctx, ADMIN, tickets.NewTicket(support.customer_id, "question", "standard", "Read only")
    )
    # Bookings in the second quarter, but the one to deliver: it is scheduled to start now.
    requested, to_cancel, held = [
        (await bookings.book_activity(ctx, ADMIN, bookings.NewBooking(contract.id, "advisory-call", day))).booking
        for day in (date(2026, 6, 1), date(2026, 6, 2), NOW.date())
    ]
    consultant = await identity.create_user(ctx, ADMIN, identity.NewUser(
        f"{unique('consultant')}@auth.example", "Consultant", PASSWORD, UserKind.STAFF, StaffRole.SUPPORT_ENGINEER,
    ))
    await bookings.schedule_booking(ctx, ADMIN, bookings.Schedule(held.id, NOW, staff_email=consultant.email))
    feed, _ = await calendar_feeds.create_feed(ctx, ADMIN, contract.id)
    available = await make_contract(program="premium-availability", plan="premium-16", effective=date(2026, 1, 1))
    on_call_contract = await make_contract(program="tiered-support", plan="premium", effective=date(2026, 1, 1),
                                           currency="DKK")
    [reserved] = await on_call.reserve_on_call(ctx, ADMIN, on_call.NewReservation(
        on_call_contract.id, [date(2026, 3, 21)], consultants=1, day_rate=Decimal("4000.00"),
    ))
    async with ctx.db.write() as session:
        [failed_id] = await outbox.queue_all(session, ctx, [outbox.Message(
            "notice", contract.customer_id, unique("ro-notice"), "Failed", "A message that failed.",
            outbox.Recipient("customer", "Read only", "ro@auth.example"),
        )])
        await session.execute(
            update(OutboxMessage).where(OutboxMessage.id == failed_id).values(status=OutboxStatus.FAILED, attempts=6)
        )
    customer_actor = Actor(kind="customer", ref="user:ro-customer", name="RO", customer_id=contract.customer_id)
    hooks = [
        (await webhooks.create_subscription(ctx, customer_actor, webhooks.NewSubscription(
            "http://127.0.0.1:9/hook", ["report.*"],
        )))[0]
        for _ in range(2)
    ]
    async with ctx.db.write() as session:
        failed_hook = WebhookDelivery(
            subscription_id=hooks[1].id, event_id=uuid.uuid4(), event_type="report.queued",
            customer_id=contract.customer_id, payload='{"type":"report.queued"}', status=WebhookDeliveryStatus.FAILED,
            created_at=NOW, next_attempt_at=NOW, attempts=12, failed_at=NOW, last_response_code=503,
            last_error="HTTP 503",
        )
        session.add(failed_hook)
    return {
        "createCustomer": ("CreateCustomerInput!", {"code": unique("ro"), "name": "Read only"}),
        "createPartner": ("CreatePartnerInput!", {"code": unique("ro"), "name": "Read only"}),
        "linkPartner": ("LinkPartnerInput!", {"partnerId": str(partner.id), "customerId": str(contract.customer_id)}),
        "createContract": ("CreateContractInput!", {
            "reference": unique("RO"), "customerId": str(contract.customer_id), "programCode": "advisory-assure",
            "planCode": "small", "effectiveDate": "2026-02-15", "endDate": "2027-02-14", "monthlyFee": "1.00",
            "currency": "EUR",
        }),
        "consumeEntitlement": ("ConsumeEntitlementInput!", {"contractId": str(contract.id), "bucket": "activities", "quantity": "1"}),
        "reverseEntry": ("ReverseEntryInput!", {"entryId": str(entry.entry.id), "reason": "undo"}),
        "adjustEntitlement": ("AdjustEntitlementInput!", {
            "contractId": str(contract.id), "bucket": "activities", "quantity": "1", "on": "2026-03-01", "reason": "fix",
        }),
        "loadProgram": ("LoadProgramInput!", {"source": program}),
        "createUser": ("CreateUserInput!", {
            "email": f"{unique('ro')}@auth.example", "name": "Read only", "password": PASSWORD, "kind": "STAFF",
            "staffRole": "ADMIN",
        }),
        "createApiToken": ("CreateApiTokenInput!", {"name": "escalate", "scope": "PROVIDER", "access": "READ_WRITE"}),
        "revokeApiToken": ("ID!", str(token.id)),
        "fileTicket": ("FileTicketInput!", {
            "customerId": str(support.customer_id), "ticketType": "question", "severity": "standard", "subject": "RO",
        }),
        "transitionTicket": ("TransitionTicketInput!", {"ticketId": str(ticket.id), "to": "in_progress"}),
        "addComment": ("AddCommentInput!", {"ticketId": str(ticket.id), "body": "Read only"}),
        "logTime": ("LogTimeInput!", {"ticketId": str(ticket.id), "minutes": 5, "note": "Read only"}),
        "bookActivity": ("BookActivityInput!", {"contractId": str(contract.id), "activity": "code-review", "on": "2026-06-03"}),
        "scheduleBooking": ("ScheduleBookingInput!", {
            "bookingId": str(requested.id), "startsAt": "2026-06-01T09:00:00+00:00", "staffEmail": consultant.email,
        }),
        "deliverBooking": ("DeliverBookingInput!", {"bookingId": str(held.id), "note": "Read only"}),
        "cancelBooking": ("CancelBookingInput!", {"bookingId": str(to_cancel.id)}),
        "createCalendarFeed": ("CreateCalendarFeedInput!", {"contractId": str(contract.id)}),
        "revokeCalendarFeed": ("ID!", str(feed.id)),
        "recordOutage": ("RecordOutageInput!", {
            "contractId": str(available.id), "startedAt": "2026-03-01T10:00:00+00:00",
            "endedAt": "2026-03-01T10:05:00+00:00", "impactedPortion": "0.5",
        }),
        "reserveOnCall": ("ReserveOnCallInput!", {
            "contractId": str(on_call_contract.id), "dates": ["2026-03-20"], "dayRate": "4000.00",
        }),
        "cancelOnCall": ("ID!", str(reserved.id)),
        "retryDelivery": ("ID!", str(failed_id)),
        "setReportContacts": ("SetReportContactsInput!", {
            "customerId": str(contract.customer_id), "emails": ["reports@auth.example"],
        }),
        "createWebhookSubscription": ("CreateWebhookSubscriptionInput!", {
            "url": "http://127.0.0.1:9/hook", "eventTypes": ["ticket.*"],
        }),
        "revokeWebhookSubscription": ("ID!", str(hooks[0].id)),
        "replayWebhookDelivery": ("ID!", str(failed_hook.id)),
    }


def mutation_document(name: str, input_type: str) -> str:
    ids = ("revokeApiToken", "revokeCalendarFeed", "cancelOnCall", "retryDelivery", "revokeWebhookSubscription",
           "replayWebhookDelivery")
    argument = "id" if name in ids else "input"
    return f"mutation($v: {input_type}) {{ {name}({argument}: $v) {RESULT} }}"


def test_the_read_only_check_covers_every_mutation():
    schema = build_schema(Settings())._schema
    assert set(schema.mutation_type.fields) == {
        "createCustomer", "createPartner", "linkPartner", "createContract", "consumeEntitlement", "reverseEntry",
        "adjustEntitlement", "loadProgram", "createUser", "createApiToken", "revokeApiToken",
        "fileTicket", "transitionTicket", "addComment", "logTime", "bookActivity", "scheduleBooking", "deliverBooking",
        "cancelBooking", "createCalendarFeed", "revokeCalendarFeed", "recordOutage", "reserveOnCall", "cancelOnCall",
        "retryDelivery", "setReportContacts", "createWebhookSubscription", "revokeWebhookSubscription",
        "replayWebhookDelivery",
    }


@pytest.mark.parametrize(
    ("scope", "target"),
    [(TokenScope.PROVIDER, None), (TokenScope.CUSTOMER, "customer")],
)
async def test_a_read_token_may_query_but_every_mutation_is_refused(connect, ctx, make_contract, scope, target):
    requests = await mutations(ctx, make_contract)
    customer_id = uuid.UUID(requests["createContract"][1]["customerId"])
    caller, token, _ = await connect.token(scope, TokenAccess.READ, **({"customer_id": customer_id} if target else {}))
    me = (await caller.data(ME))["me"]
    assert me["readOnly"] is True
    contracts = (await caller.data("query($c: ID) { contracts(customerId: $c) { edges { node { id } } } }", {"c": str(customer_id)}))
    assert len(contracts["contracts"]["edges"]) == 1

    before = await table_counts(ctx)
    for name, (input_type, value) in requests.items():
        response = await caller.post(mutation_document(name, input_type), {"v": value})
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, (name, body)
        result = body["data"][name]
        assert result["__typename"] == "PermissionDeniedError", (name, result)
        assert result["code"] == "PERMISSION_DENIED"
        assert result["message"].startswith(f"API token {token.name!r} has read-only access and may not "), result
    assert await table_counts(ctx) == before


async def test_the_same_mutations_succeed_with_a_read_write_admin_session(client, ctx, make_contract):
    """The control for the test above: the requests themselves are valid."""
    requests = await mutations(ctx, make_contract)
    caller = Caller(client)
    for name, (input_type, value) in requests.items():
        result = (await caller.data(mutation_document(name, input_type), {"v": value}))[name]
        assert not result["__typename"].endswith("Error"), (name, result)


# ---- session cookies and CSRF -------------------------------------------------------------------


async def test_a_session_needs_its_csrf_header(connect, ctx):
    caller, user, login = await connect.user(UserKind.STAFF, staff_role=StaffRole.SUPPORT_ENGINEER, name="Sam")
    me = (await caller.data(ME))["me"]
    assert me == {"kind": "staff", "name": f"Sam <{user.email}>", "roles": ["support_engineer"], "customerId": None,
                  "partnerId": None, "readOnly": False}

    message = "a session-authenticated request needs the X-CSRF-Token header"
    no_header = connect.anonymous()
    no_header.http.cookies.set(SESSION_COOKIE, login.session_secret)
    wrong = connect.anonymous({CSRF_HEADER: "not-the-token"})
    wrong.http.cookies.set(SESSION_COOKIE, login.session_secret)
    someone_elses = connect.anonymous({CSRF_HEADER: (await identity.log_in(ctx, ADMIN_EMAIL, "correct horse battery staple")).csrf_token})
    someone_elses.http.cookies.set(SESSION_COOKIE, login.session_secret)
    before = await table_counts(ctx)
    for refused in (no_header, wrong, someone_elses):
        assert_refused(await refused.post(ME), 403, "CSRF", message)
        consume = 'mutation { createCustomer(input: {code: "csrf-x", name: "x"}) { __typename } }'
        assert_refused(await refused.post(consume), 403, "CSRF", message)
    assert await table_counts(ctx) == before


async def test_a_tampered_or_ended_session_cookie_is_401(connect, ctx, clock):
    caller, _, login = await connect.user()
    tampered = connect.anonymous({CSRF_HEADER: login.csrf_token})
    tampered.http.cookies.set(SESSION_COOKIE, login.session_secret[:-2] + ("AA" if not login.session_secret.endswith("AA") else "BB"))
    assert_refused(await tampered.post(ME), 401, "UNAUTHENTICATED", "your session is not valid; please log in")

    clock.instant = NOW + timedelta(hours=12)
    assert_refused(await caller.post(ME), 401, "UNAUTHENTICATED", "your session has expired; please log in again")
    clock.instant = NOW
    await identity.log_out(ctx, login.session_secret)
    assert_refused(await caller.post(ME), 401, "UNAUTHENTICATED", "your session has ended; please log in again")


async def test_a_bearer_token_needs_no_csrf_header_and_wins_over_the_cookie(connect, make_customer, admin_login):
    customer = await make_customer()
    _, _, secret = await connect.token(TokenScope.CUSTOMER, TokenAccess.READ, customer_id=customer.id)
    both = connect.bearer(secret)
    both.http.cookies.set(SESSION_COOKIE, admin_login.session_secret)  # an admin session, no CSRF header
    assert (await both.data(ME))["me"]["customerId"] == str(customer.id)


# ---- users over GraphQL ------------------------------------------------------------------------

CREATE_USER = """
mutation($input: CreateUserInput!) {
  createUser(input: $input) {
    __typename
    ... on CreateUserSuccess { user { id email name kind staffRole customerId partnerId active lastLoginAt } }
    ... on UserError { code message field }
  }
}
"""


async def test_create_user_and_its_refusals(gql, ctx, connect, make_customer):
    customer = await make_customer()
    address = f"{unique('Grace')}@Customer.Example"
    payload = {"email": address, "name": "Grace", "password": PASSWORD, "kind": "CUSTOMER", "customerId": str(customer.id)}
    result = (await gql(CREATE_USER, {"input": payload}))["createUser"]
    assert result["__typename"] == "CreateUserSuccess"
    assert result["user"] == {
        "id": result["user"]["id"], "email": address.lower(), "name": "Grace", "kind": "customer", "staffRole": None,
        "customerId": str(customer.id), "partnerId": None, "active": True, "lastLoginAt": None,
    }
    assert PASSWORD not in str(result)
    listed, after = [], None
    while True:  # every page, by e-mail address
        page = (await gql(USERS, {"after": after}))["users"]
        listed += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert {"email": address.lower(), "kind": "customer"} in listed
    assert [u["email"] for u in listed] == sorted(u["email"] for u in listed)
    async with ctx.db.read() as session:
        assert (await session.get(User, uuid.UUID(result["user"]["id"]))).password_hash.startswith("$argon2")

    customer_caller, _, _ = await connect.token(TokenScope.CUSTOMER, TokenAccess.READ_WRITE, customer_id=customer.id)
    before = await table_counts(ctx)
    refusals = [
        ({**payload, "email": address.upper()}, "ConflictError", "ALREADY_EXISTS", "email"),
        ({**payload, "email": f"{unique('x')}@c.example", "password": "short"}, "ValidationError", "INVALID", "password"),
        ({**payload, "email": f"{unique('x')}@c.example", "kind": "STAFF"}, "ValidationError", "INVALID", "staffRole"),
        ({**payload, "email": f"{unique('x')}@c.example", "customerId": str(uuid.uuid4())}, "NotFoundError", "NOT_FOUND", "customerId"),
    ]
    for fields, typename, code, field in refusals:
        refused = (await gql(CREATE_USER, {"input": fields}))["createUser"]
        assert (refused["__typename"], refused["code"], refused["field"]) == (typename, code, field), refused
    denied = (await customer_caller.data(CREATE_USER, {"input": {**payload, "email": f"{unique('x')}@c.example"}}))["createUser"]
    assert denied["__typename"] == "PermissionDeniedError"
    assert denied["message"].endswith("may not manage users")
    assert await table_counts(ctx) == before


async def test_only_admins_list_users_and_tokens(connect, make_customer):
    customer = await make_customer()
    callers = [
        (await connect.user(UserKind.STAFF, staff_role=StaffRole.CLIENT_MANAGER))[0],
        (await connect.user(UserKind.CUSTOMER, customer_id=customer.id))[0],
        (await connect.token(TokenScope.PROVIDER, TokenAccess.READ_WRITE))[0],
    ]
    for caller in callers:
        for query, field in (("{ users { edges { node { id } } } }", "users"), (TOKENS, "apiTokens")):
            response = await caller.post(query)
            assert response.status_code == 200
            body = response.json()
            assert body["data"] is None
            assert body["errors"][0]["path"] == [field]
            assert " may not " in body["errors"][0]["message"]


# ---- the audit log over GraphQL ----------------------------------------------------------------

AUDIT = """
query($first: Int!, $after: String, $customerId: ID, $action: String) {
  auditLog(first: $first, after: $after, customerId: $customerId, action: $action) {
    edges { cursor node { id occurredAt actorKind actorRef actorName partnerId onBehalfOfCustomerId interface action targetType targetId detail } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def test_mutations_over_graphql_are_audited_as_graphql(gql, admin_login, clock):
    code = unique("audited")
    clock.instant = NOW + timedelta(seconds=1)
    created = (await gql(
        'mutation($c: String!) { createCustomer(input: {code: $c, name: "Audited"}) { ... on CreateCustomerSuccess { customer { id } } } }',
        {"c": code},
    ))["createCustomer"]["customer"]
    log = (await gql(AUDIT, {"first": 10, "customerId": created["id"]}))["auditLog"]
    [edge] = log["edges"]
    node = edge["node"]
    assert node == {
        "id": node["id"], "occurredAt": "2026-03-10T12:00:01+00:00", "actorKind": "staff",
        "actorRef": f"user:{admin_login.user.id}", "actorName": f"Test Admin <{ADMIN_EMAIL}>", "partnerId": None,
        "onBehalfOfCustomerId": created["id"], "interface": "graphql", "action": "customer.create",
        "targetType": "customer", "targetId": created["id"], "detail": {"code": code},
    }
    assert log["pageInfo"] == {"hasNextPage": False, "endCursor": edge["cursor"]}
    # Other tests share the log (and move their clocks): filter by action within this customer.
    by_action = (await gql(AUDIT, {"first": 5, "action": "customer.create", "customerId": created["id"]}))
    assert [e["node"]["id"] for e in by_action["auditLog"]["edges"]] == [node["id"]]
    other_action = (await gql(AUDIT, {"first": 5, "action": "contract.create", "customerId": created["id"]}))
    assert other_action["auditLog"]["edges"] == []


async def test_the_audit_log_is_for_staff_only(connect, make_customer):
    customer = await make_customer()
    staff, _, _ = await connect.user(UserKind.STAFF, staff_role=StaffRole.SUPPORT_ENGINEER)
    assert (await staff.data(AUDIT, {"first": 5, "customerId": str(customer.id)}))["auditLog"]["edges"]
    for caller in (
        (await connect.user(UserKind.CUSTOMER, customer_id=customer.id))[0],
        (await connect.token(TokenScope.CUSTOMER, TokenAccess.READ, customer_id=customer.id))[0],
        (await connect.token(TokenScope.PROVIDER, TokenAccess.READ_WRITE))[0],
    ):
        body = (await caller.post(AUDIT, {"first": 5, "customerId": str(customer.id)})).json()
        assert body["data"] is None
        assert body["errors"][0]["message"].endswith("may not read the audit log")
