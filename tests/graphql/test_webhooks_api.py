"""Webhooks over GraphQL: a subscription's secret is in the create result and nowhere else, each side sees its
own subscriptions and deliveries (with every attempt), refusals are typed errors naming the field, and staff
replay a delivery."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import graphql
from sqlalchemy import select, update

from api.config import Settings
from api.graphql.schema import build_schema
from api.models import TokenAccess, TokenScope, WebhookAttempt, WebhookDelivery, WebhookDeliveryStatus
from api.services import ledger, parties, webhooks
from api.services.context import AppContext
from api.signing import signature_header, verify_signature
from tests.conftest import ADMIN, NOW, unique
from tests.graphql.conftest import Connect

URL = "http://127.0.0.1:9/api-test-hook"  # a closed port: nothing here sends to it

CREATE = """
mutation Create($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) {
    __typename
    ... on CreateWebhookSubscriptionSuccess {
      secret subscription { id ownerKind customerId partnerId url eventTypes description active createdBy createdAt }
    }
    ... on UserError { code message field }
  }
}"""

SUBSCRIPTIONS = """
query List($active: Boolean) {
  webhookSubscriptions(first: 200, active: $active) { edges { node { id url active revokedAt } } pageInfo { hasNextPage } }
}"""

REVOKE = """
mutation Revoke($id: ID!) {
  revokeWebhookSubscription(id: $id) {
    __typename
    ... on RevokeWebhookSubscriptionSuccess { subscription { id active revokedAt } }
    ... on UserError { code message field }
  }
}"""

DELIVERIES = """
query Deliveries($filter: WebhookDeliveryFilter) {
  webhookDeliveries(filter: $filter, first: 50) {
    edges { node {
      id subscriptionId eventId eventType customerId payload status attempts replays lastResponseCode lastError
      attemptLog { number outcome responseCode error durationMs startedAt finishedAt }
    } }
    pageInfo { hasNextPage endCursor }
  }
}"""

REPLAY = """
mutation Replay($id: ID!) {
  replayWebhookDelivery(id: $id) {
    __typename
    ... on ReplayWebhookDeliverySuccess { delivery { id status attempts replays attemptLog { number } } }
    ... on UserError { code message field }
  }
}"""


def test_no_type_of_the_schema_can_return_a_subscription_secret():
    schema = graphql.build_schema(build_schema(Settings()).as_str())
    subscription = schema.type_map["WebhookSubscription"]
    assert not {name for name in subscription.fields if "secret" in name.lower()}
    success = schema.type_map["CreateWebhookSubscriptionSuccess"]
    assert "secret" in success.fields


async def _customer(ctx: AppContext):  # type: ignore[no-untyped-def]
    code = unique("wh-api")
    return await parties.create_customer(ctx, ADMIN, parties.NewCustomer(code=code, name=code))


async def _revoke_all(ctx: AppContext, ids: list[str]) -> None:
    """Leave nothing active in the run's shared database: its pending deliveries fail with it."""
    for ident in ids:
        await webhooks.revoke_subscription(ctx, ADMIN, uuid.UUID(ident))


async def test_a_customer_subscribes_sees_only_its_own_and_revokes(ctx, connect: Connect):
    alpha, beta = await _customer(ctx), await _customer(ctx)
    alpha_http, _, _ = await connect.token(TokenScope.CUSTOMER, TokenAccess.READ_WRITE, customer_id=alpha.id)
    beta_http, _, _ = await connect.token(TokenScope.CUSTOMER, TokenAccess.READ_WRITE, customer_id=beta.id)
    alpha_read, _, _ = await connect.token(TokenScope.CUSTOMER, TokenAccess.READ, customer_id=alpha.id)

    created = (await alpha_http.data(CREATE, {"input": {"url": URL, "eventTypes": ["ticket.*", "report.queued"],
                                                        "description": "ERP"}}))["createWebhookSubscription"]
    assert created["__typename"] == "CreateWebhookSubscriptionSuccess"
    secret, subscription = created["secret"], created["subscription"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert subscription["ownerKind"] == "CUSTOMER" and subscription["customerId"] == str(alpha.id)
    assert subscription["partnerId"] is None and subscription["eventTypes"] == ["ticket.*", "report.queued"]
    assert subscription["active"] and subscription["description"] == "ERP"
    try:
        # Listed for its owner, without the secret; not for another customer.
        listed = (await alpha_http.data(SUBSCRIPTIONS))["webhookSubscriptions"]["edges"]
        assert [edge["node"]["id"] for edge in listed] == [subscription["id"]]
        assert secret not in str(listed)
        assert (await beta_http.data(SUBSCRIPTIONS))["webhookSubscriptions"]["edges"] == []
        assert (await beta_http.data(REVOKE, {"id": subscription["id"]}))["revokeWebhookSubscription"]["__typename"] == (
            "NotFoundError"
        )

        # Refusals are typed and name the field; nothing is created.
        for given, field in (
            ({"url": "http://example.com/hook", "eventTypes": ["*"]}, "url"),
            ({"url": URL, "eventTypes": ["tickets.filed"]}, "eventTypes"),
            ({"url": URL, "eventTypes": []}, "eventTypes"),
            ({"url": URL, "eventTypes": ["*"], "description": "x" * 201}, "description"),
        ):
            refused = (await alpha_http.data(CREATE, {"input": given}))["createWebhookSubscription"]
            assert (refused["__typename"], refused["field"]) == ("ValidationError", field), refused
        denied = (await alpha_read.data(CREATE, {"input": {"url": URL, "eventTypes": ["*"]}}))["createWebhookSubscription"]
        assert denied["__typename"] == "PermissionDeniedError"
        assert len((await alpha_http.data(SUBSCRIPTIONS))["webhookSubscriptions"]["edges"]) == 1

        revoked = (await alpha_http.data(REVOKE, {"id": subscription["id"]}))["revokeWebhookSubscription"]
        assert revoked["subscription"]["active"] is False and revoked["subscription"]["revokedAt"] is not None
        assert (await alpha_http.data(SUBSCRIPTIONS, {"active": True}))["webhookSubscriptions"]["edges"] == []
    finally:
        await _revoke_all(ctx, [subscription["id"]])


async def test_a_partner_subscribes_for_itself(ctx, connect: Connect):
    partner = await parties.create_partner(ctx, ADMIN, parties.NewPartner(code=unique("wh-api-p"), name="Partner"))
    http, _, _ = await connect.token(TokenScope.PARTNER, TokenAccess.READ_WRITE, partner_id=partner.id)
    created = (await http.data(CREATE, {"input": {"url": URL, "eventTypes": ["entitlement.*"]}}))["createWebhookSubscription"]
    try:
        assert created["subscription"]["ownerKind"] == "PARTNER"
        assert created["subscription"]["partnerId"] == str(partner.id) and created["subscription"]["customerId"] is None
    finally:
        await _revoke_all(ctx, [created["subscription"]["id"]])


async def test_deliveries_show_every_attempt_and_staff_replay_them(ctx, connect: Connect, make_contract):
    contract = await make_contract()
    customer_id = contract.customer_id
    owner, _, _ = await connect.token(TokenScope.CUSTOMER, TokenAccess.READ_WRITE, customer_id=customer_id)
    admin, _, _ = await connect.user()
    created = (await owner.data(CREATE, {"input": {"url": URL, "eventTypes": ["entitlement.consumed"]}}))[
        "createWebhookSubscription"
    ]
    subscription_id, secret = created["subscription"]["id"], created["secret"]
    try:
        taken = await ledger.consume_entitlement(
            ctx, ADMIN, ledger.Consumption(contract.id, "activities", Decimal(1), reason="webhook over graphql")
        )
        async with ctx.db.write() as session:
            delivery = await session.scalar(
                select(WebhookDelivery).where(WebhookDelivery.subscription_id == uuid.UUID(subscription_id))
            )
            assert delivery is not None
            # As the sender leaves it after two refused attempts and a last one that timed out.
            for number, code in ((1, 503), (2, 503), (3, None)):
                session.add(WebhookAttempt(
                    delivery_id=delivery.id, number=number, started_at=NOW + timedelta(minutes=number),
                    finished_at=NOW + timedelta(minutes=number, seconds=1), outcome="failed", response_code=code,
                    error="no answer within 10 s" if code is None else "HTTP 503", duration_ms=1000,
                ))
            await session.execute(
                update(WebhookDelivery).where(WebhookDelivery.id == delivery.id).values(
                    status=WebhookDeliveryStatus.FAILED, attempts=3, failed_at=NOW, last_error="no answer within 10 s"
                )
            )

        page = (await owner.data(DELIVERIES, {"filter": {"subscriptionId": subscription_id}}))["webhookDeliveries"]
        [node] = [edge["node"] for edge in page["edges"]]
        assert node["eventType"] == "entitlement.consumed" and node["status"] == "FAILED" and node["attempts"] == 3
        assert [(a["number"], a["responseCode"]) for a in node["attemptLog"]] == [(1, 503), (2, 503), (3, None)]
        payload = node["payload"]
        assert payload["id"] == node["eventId"] and payload["customer_id"] == str(customer_id)
        assert payload["data"]["entry"]["id"] == str(taken.entry.id)
        assert payload["data"]["entry"]["reason"] == "webhook over graphql"
        # The stored body is what a receiver verifies against.
        async with ctx.db.read() as session:
            body = await session.scalar(select(WebhookDelivery.payload).where(WebhookDelivery.id == uuid.UUID(node["id"])))
        assert verify_signature(secret, signature_header(secret, body), body)
        # Filters: by status and event type; an id this API never gave out matches nothing.
        for wanted, count in (({"status": "FAILED"}, 1), ({"status": "PENDING"}, 0), ({"eventType": "ticket.filed"}, 0),
                              ({"eventId": node["eventId"]}, 1), ({"eventId": "nope"}, 0)):
            given = {"subscriptionId": subscription_id, **wanted}
            assert len((await owner.data(DELIVERIES, {"filter": given}))["webhookDeliveries"]["edges"]) == count

        # The owner may not replay; staff may, once (then it waits to be sent).
        assert (await owner.data(REPLAY, {"id": node["id"]}))["replayWebhookDelivery"]["__typename"] == (
            "PermissionDeniedError"
        )
        replayed = (await admin.data(REPLAY, {"id": node["id"]}))["replayWebhookDelivery"]
        assert replayed["__typename"] == "ReplayWebhookDeliverySuccess"
        assert replayed["delivery"]["status"] == "PENDING" and replayed["delivery"]["attempts"] == 0
        assert replayed["delivery"]["replays"] == 1 and len(replayed["delivery"]["attemptLog"]) == 3
        again = (await admin.data(REPLAY, {"id": node["id"]}))["replayWebhookDelivery"]
        assert (again["__typename"], again["code"], again["field"]) == ("ConflictError", "WRONG_STATUS", "id")
        missing = (await admin.data(REPLAY, {"id": str(uuid.uuid4())}))["replayWebhookDelivery"]
        assert missing["__typename"] == "NotFoundError"
    finally:
        await _revoke_all(ctx, [subscription_id])
