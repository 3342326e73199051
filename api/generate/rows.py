"""Rows as the services write them, for loading in bulk: one tuple per row, in each table's COLUMNS order,
with the values, texts, request hashes and audit entries the service functions would write. Data loaded
this way reads back exactly like data made one request at a time (the generator and the benchmarks use it).

Values are Python objects (UUIDs, aware UTC datetimes, dates, Decimals, dicts and lists for JSON columns);
`api.generate.bulk` turns them into what each backend takes."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from hashlib import sha256
from json.encoder import encode_basestring_ascii as _encode_string
from datetime import date, datetime
from decimal import Decimal
from random import Random
from typing import Any

from api.models import Base
from api.services.context import Actor

__all__ = [
    "COLUMNS",
    "Ids",
    "RowSet",
    "acknowledgement_text",
    "audit",
    "balance",
    "booking",
    "booking_partner",
    "comment",
    "consume_hash",
    "contract",
    "deduction_hash",
    "customer",
    "ledger_audit",
    "ledger_entry",
    "outage",
    "partner",
    "partner_link",
    "hash_request",
    "ticket",
    "ticket_event",
    "time_entry",
    "user",
]

# The columns each builder fills, in the order of its tuple. Columns left out take their database default.
COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("id", "code", "name", "email", "country", "report_contacts", "created_at"),
    "partners": ("id", "code", "name", "email", "certified_until_date", "created_at"),
    "partner_customers": (
        "partner_id", "customer_id", "managed", "production_access", "can_file_tickets", "can_view_entitlements",
        "can_book_activities", "created_at",
    ),
    "users": (
        "id", "email", "name", "password_hash", "kind", "staff_role", "customer_id", "partner_id", "active",
        "created_at",
    ),
    "contracts": (
        "id", "reference", "customer_id", "plan_id", "effective_date", "end_date", "monthly_fee", "currency",
        "custom_allowances", "catalog", "client_manager_id", "created_at",
    ),
    "bookings": (
        "id", "contract_id", "customer_id", "activity_code", "activity_name", "bucket_code", "units",
        "period_start", "period_end", "requested_date", "status", "note", "starts_at", "ends_at", "staff_id",
        "requested_by_kind", "requested_by_ref", "requested_by_name", "via_partner_id", "delivered_at",
        "delivery_note", "cancelled_at", "cancel_reason", "revision", "created_at", "updated_at",
    ),
    "booking_partners": ("booking_id", "partner_id", "added_by_ref", "created_at"),
    "tickets": (
        "id", "customer_id", "contract_id", "ticket_type", "severity", "status", "subject", "description",
        "affected_account", "steps_followed", "expected_result", "priority_flag", "resolved_at", "sla_due_at",
        "filed_by_kind", "filed_by_ref", "via_partner_id", "created_at",
    ),
    "ticket_events": (
        "id", "ticket_id", "position", "kind", "at", "actor_kind", "actor_ref", "severity", "plan", "automatic",
        "next_update_at",
    ),
    "ticket_comments": (
        "id", "ticket_id", "author_kind", "author_ref", "author_name", "internal", "automatic", "body", "created_at",
    ),
    "time_entries": (
        "id", "ticket_id", "actor_ref", "actor_name", "minutes", "note", "work_date", "corrects_entry_id", "created_at",
    ),
    "ledger_entries": (
        "id", "contract_id", "bucket_code", "period_start", "period_end", "quantity", "kind", "reason", "actor_kind",
        "actor_ref", "on_behalf_of_customer_id", "idempotency_key", "request_hash", "reverses_entry_id", "ticket_id",
        "time_entry_id", "booking_id", "created_at",
    ),
    "entitlement_balances": (
        "contract_id", "bucket_code", "period_start", "period_end", "allowance", "consumed", "overage", "updated_at",
    ),
    "outages": (
        "id", "contract_id", "program_id", "started_at", "ended_at", "impacted_portion", "note", "created_by_ref",
        "created_by_name", "created_at",
    ),
    "audit_log": (
        "id", "occurred_at", "actor_kind", "actor_ref", "actor_name", "partner_id", "on_behalf_of_customer_id",
        "interface", "action", "target_type", "target_id", "detail",
    ),
}
# The order foreign keys accept: referenced tables first.
TABLE_ORDER = tuple(t.name for t in Base.metadata.sorted_tables if t.name in COLUMNS)


_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_4 = (4 << 76) | (0x8000 << 48)
_new_object, _set_field, _UUID, _UNKNOWN = object.__new__, object.__setattr__, uuid.UUID, uuid.SafeUUID.unknown


class Ids:
    """Version-4 UUIDs drawn from a seeded generator: the same seed gives the same ids. Built the way
    `uuid.UUID(int=..., version=4)` builds them, without its argument checks (a third of the cost)."""

    __slots__ = ("_bits",)

    def __init__(self, rng: Random):
        self._bits = rng.getrandbits

    def __call__(self) -> uuid.UUID:
        ident = _new_object(_UUID)
        _set_field(ident, "int", (self._bits(128) & _VERSION_MASK) | _VERSION_4)
        _set_field(ident, "is_safe", _UNKNOWN)
        return ident


def _json_value(value: object) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return str(value)
    if isinstance(value, str):
        return _encode_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_json_value(v) for v in value) + "]"
    return _encode_string(str(value))  # dates, UUIDs, Decimals: `default=str`


def consume_hash(bucket: str, quantity: int, reason: str) -> str:
    """`hash_request("consume", ...)` as `ledger.consume_entitlement` computes it for a consumption today
    on nobody's behalf."""
    text = (
        f'{{"action": "consume", "bucket": {_encode_string(bucket)}, "on": null, "on_behalf_of": null, '
        f'"quantity": "{quantity}", "reason": {_encode_string(reason)}}}'
    )
    return sha256(text.encode()).hexdigest()


def deduction_hash(kind: str, bucket: str, quantity: int, period_start: date, reason: str, ticket_id: str,
                   time_entry_id: str | None) -> str:
    """`hash_request` as `ledger.post_in_session` computes it for a ticket's deduction (ids as strings)."""
    time_entry = "null" if time_entry_id is None else f'"{time_entry_id}"'
    text = (
        f'{{"action": "{kind}", "booking": null, "bucket": {_encode_string(bucket)}, "period": "{period_start}", '
        f'"quantity": {quantity}, "reason": {_encode_string(reason)}, "reverses": null, "ticket": "{ticket_id}", '
        f'"time_entry": {time_entry}}}'
    )
    return sha256(text.encode()).hexdigest()


def hash_request(action: str, **payload: object) -> str:
    """`ledger.hash_request`, byte for byte (json.dumps with sorted keys, default=str), three times faster:
    it is computed for every generated ledger entry."""
    payload["action"] = action
    text = "{" + ", ".join(f"{_encode_string(key)}: {_json_value(payload[key])}" for key in sorted(payload)) + "}"
    return sha256(text.encode()).hexdigest()


class RowSet:
    """Rows waiting to be inserted, by table."""

    def __init__(self) -> None:
        self.tables: dict[str, list[tuple[Any, ...]]] = {name: [] for name in TABLE_ORDER}
        self.customers = 0  # how many customers' rows the set holds, for progress reports

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        self.tables[table].append(row)

    def extend(self, table: str, rows: Iterable[tuple[Any, ...]]) -> None:
        self.tables[table].extend(rows)

    def counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.tables.items()}

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.tables.values())


# ---- parties, users, contracts ----------------------------------------------------------------------


def customer(
    id: uuid.UUID, code: str, name: str, email: str | None, country: str | None, created_at: datetime,
    report_contacts: Sequence[str] = (),
) -> tuple:
    return (id, code, name, email, country, list(report_contacts), created_at)


def partner(
    id: uuid.UUID, code: str, name: str, email: str | None, certified_until_date: date | None, created_at: datetime
) -> tuple:
    return (id, code, name, email, certified_until_date, created_at)


def partner_link(
    partner_id: uuid.UUID, customer_id: uuid.UUID, *, managed: bool, production_access: bool, created_at: datetime,
    can_file_tickets: bool = True, can_view_entitlements: bool = True, can_book_activities: bool = False,
) -> tuple:
    return (
        partner_id, customer_id, managed, production_access, can_file_tickets, can_view_entitlements,
        can_book_activities, created_at,
    )


def partner_link_detail(link: tuple) -> dict[str, bool]:
    """The audit detail `parties.link_partner` writes for a link row."""
    return {
        "managed": link[2], "production_access": link[3], "can_file_tickets": link[4],
        "can_view_entitlements": link[5], "can_book_activities": link[6],
    }


def user(
    id: uuid.UUID, email: str, name: str, password_hash: str, kind: str, created_at: datetime, *,
    staff_role: str | None = None, customer_id: uuid.UUID | None = None, partner_id: uuid.UUID | None = None,
) -> tuple:
    return (id, email.strip().lower(), name, password_hash, kind, staff_role, customer_id, partner_id, True, created_at)


def user_actor(user_row: tuple, interface: str = "portal") -> Actor:
    """The Actor a user row stands for, as `identity.actor_for_user` makes it."""
    ident, email, name, kind, role, customer_id, partner_id = (
        user_row[0], user_row[1], user_row[2], user_row[4], user_row[5], user_row[6], user_row[7]
    )
    common = {"ref": f"user:{ident}", "name": f"{name} <{email}>", "user_id": ident, "interface": interface}
    if kind == "customer":
        return Actor(kind="customer", customer_id=customer_id, **common)
    if kind == "partner":
        return Actor(kind="partner", partner_id=partner_id, **common)
    return Actor(kind="staff", roles=frozenset({role}), **common)


def contract(
    id: uuid.UUID, reference: str, customer_id: uuid.UUID, plan_id: uuid.UUID, effective_date: date, end_date: date,
    monthly_fee: Decimal, currency: str, created_at: datetime, *, custom_allowances: dict[str, int] | None = None,
    catalog: Sequence[str] | None = None, client_manager_id: uuid.UUID | None = None,
) -> tuple:
    return (
        id, reference, customer_id, plan_id, effective_date, end_date, monthly_fee, currency,
        dict(custom_allowances or {}), None if catalog is None else list(catalog), client_manager_id, created_at,
    )


# ---- the audit log ----------------------------------------------------------------------------------


def audit(
    id: uuid.UUID, at: datetime, actor: Actor, action: str, target_type: str, target_id: object,
    customer_id: uuid.UUID | None = None, detail: dict[str, Any] | None = None,
) -> tuple:
    """An audit row as `audit.record` writes it."""
    return (
        id, at, actor.kind, actor.ref, actor.name, actor.partner_id, customer_id, actor.interface, action,
        target_type, str(target_id), detail or {},
    )


# ---- the ledger -------------------------------------------------------------------------------------


def ledger_entry(
    id: uuid.UUID, contract_id: uuid.UUID, bucket: str, period_start: date, period_end: date, quantity: int,
    kind: str, reason: str, actor: Actor, at: datetime, request_hash: str, *,
    on_behalf_of: uuid.UUID | None = None, idempotency_key: str | None = None, reverses: uuid.UUID | None = None,
    ticket_id: uuid.UUID | None = None, time_entry_id: uuid.UUID | None = None, booking_id: uuid.UUID | None = None,
) -> tuple:
    """A ledger entry as `ledger.post` writes it."""
    return (
        id, contract_id, bucket, period_start, period_end, quantity, kind, reason.strip(), actor.kind, actor.ref,
        on_behalf_of, idempotency_key, request_hash, reverses, ticket_id, time_entry_id, booking_id, at,
    )


def ledger_audit(id: uuid.UUID, entry: tuple, actor: Actor, contract_reference: str, customer_id: uuid.UUID) -> tuple:
    """The audit row `ledger.post` writes beside an entry built by `ledger_entry`."""
    detail: dict[str, object] = {"contract": contract_reference, "bucket": entry[2], "quantity": entry[5]}
    if entry[14] is not None:
        detail["ticket"] = str(entry[14])
    if entry[15] is not None:
        detail["time_entry"] = str(entry[15])
    if entry[16] is not None:
        detail["booking"] = str(entry[16])
    return audit(id, entry[17], actor, f"ledger.{entry[6]}", "ledger_entry", entry[0], entry[10] or customer_id, detail)


def balance(
    contract_id: uuid.UUID, bucket: str, period_start: date, period_end: date, allowance: int, consumed: int,
    overage: int, updated_at: datetime,
) -> tuple:
    return (contract_id, bucket, period_start, period_end, allowance, consumed, overage, updated_at)


# ---- bookings ---------------------------------------------------------------------------------------


def booking(
    id: uuid.UUID, contract_id: uuid.UUID, customer_id: uuid.UUID, activity_code: str, activity_name: str,
    bucket: str, units: int, period_start: date, period_end: date, requested_date: date, status: str,
    requested_by: Actor, created_at: datetime, *, note: str = "", starts_at: datetime | None = None,
    ends_at: datetime | None = None, staff_id: uuid.UUID | None = None, delivered_at: datetime | None = None,
    delivery_note: str | None = None, cancelled_at: datetime | None = None, cancel_reason: str | None = None,
    revision: int = 0, updated_at: datetime | None = None,
) -> tuple:
    return (
        id, contract_id, customer_id, activity_code, activity_name, bucket, units, period_start, period_end,
        requested_date, status, note, starts_at, ends_at, staff_id, requested_by.kind, requested_by.ref,
        requested_by.name[:200], requested_by.partner_id, delivered_at, delivery_note, cancelled_at, cancel_reason,
        revision, created_at, updated_at or created_at,
    )


def booking_partner(booking_id: uuid.UUID, partner_id: uuid.UUID, added_by: Actor, created_at: datetime) -> tuple:
    return (booking_id, partner_id, added_by.ref, created_at)


# ---- tickets ----------------------------------------------------------------------------------------


def ticket(
    id: uuid.UUID, customer_id: uuid.UUID, contract_id: uuid.UUID, ticket_type: str, severity: str, status: str,
    subject: str, filed_by: Actor, created_at: datetime, *, description: str = "", affected_account: str | None = None,
    steps_followed: str | None = None, expected_result: str | None = None, priority_flag: bool = False,
    resolved_at: datetime | None = None, sla_due_at: datetime | None = None,
) -> tuple:
    """A ticket row; `sla_due_at` is what `tickets.next_due` gave at its latest event."""
    return (
        id, customer_id, contract_id, ticket_type, severity, status, subject, description, affected_account,
        steps_followed, expected_result, priority_flag, resolved_at, sla_due_at, filed_by.kind, filed_by.ref,
        filed_by.partner_id, created_at,
    )


def ticket_event(
    id: uuid.UUID, ticket_id: uuid.UUID, position: int, kind: str, at: datetime, actor_kind: str, actor_ref: str, *,
    severity: str | None = None, plan: str | None = None, automatic: bool = False,
    next_update_at: datetime | None = None,
) -> tuple:
    return (id, ticket_id, position, kind, at, actor_kind, actor_ref, severity, plan, automatic, next_update_at)


def comment(
    id: uuid.UUID, ticket_id: uuid.UUID, author_kind: str, author_ref: str, author_name: str, body: str,
    created_at: datetime, *, internal: bool = False, automatic: bool = False,
) -> tuple:
    return (id, ticket_id, author_kind, author_ref, author_name, internal, automatic, body, created_at)


def acknowledgement_text(provider: str, subject: str, ticket_id: uuid.UUID) -> str:
    """The automatic acknowledgement `tickets.open_ticket` posts on every new ticket."""
    return (
        f"Thank you: {provider} support has received your request \"{subject}\" "
        f"(ticket {ticket_id}). This is an automatic acknowledgement; a member of the support team will reply."
    )


def time_entry(
    id: uuid.UUID, ticket_id: uuid.UUID, actor: Actor, minutes: int, note: str, work_date: date, created_at: datetime,
    corrects_entry_id: uuid.UUID | None = None,
) -> tuple:
    return (id, ticket_id, actor.ref, actor.name, minutes, note, work_date, corrects_entry_id, created_at)


# ---- availability -----------------------------------------------------------------------------------


def outage(
    id: uuid.UUID, started_at: datetime, ended_at: datetime, impacted_portion: Decimal, actor: Actor,
    created_at: datetime, *, contract_id: uuid.UUID | None = None, program_id: uuid.UUID | None = None, note: str = "",
) -> tuple:
    return (id, contract_id, program_id, started_at, ended_at, impacted_portion, note, actor.ref, actor.name[:200], created_at)


def outage_detail(row: tuple, scope: dict[str, str]) -> dict[str, str]:
    """The audit detail `availability.record_outage` writes."""
    return {**scope, "started_at": row[3].isoformat(), "ended_at": row[4].isoformat(), "impacted_portion": str(row[5])}
