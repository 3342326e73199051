"""The access policy, as data: which actor may take which action, and which rows each actor sees.

Every service function asks here; nothing else in the code base decides who may do what.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Select, select

from api.models import Contract, Customer, PartnerCustomer
from api.services.context import Actor
from api.services.errors import PermissionDenied

__all__ = ["ACTIONS", "require", "visible_contracts", "visible_customers"]


def _provider(actor: Actor) -> bool:
    return actor.is_provider


def _admin(actor: Actor) -> bool:
    return actor.is_provider and "admin" in actor.roles


def _anyone(actor: Actor) -> bool:
    return True


ACTIONS: dict[str, Callable[[Actor], bool]] = {
    "program.read": _anyone,
    "program.load": _admin,
    "customer.read": _anyone,  # rows are scoped by visible_customers
    "customer.create": _provider,
    "partner.read": _provider,
    "partner.create": _provider,
    "partner.link": _provider,
    "contract.read": _anyone,  # rows are scoped by visible_contracts
    "contract.create": _provider,
    "entitlement.consume": _provider,
    "ledger.reverse": _provider,
    "ledger.adjust": _admin,
}


def require(actor: Actor, action: str) -> None:
    allowed = ACTIONS[action]
    if not allowed(actor):
        raise PermissionDenied(f"{actor.name} may not {action.replace('.', ' ')}")


def _managed_customer_ids(actor: Actor) -> Select[tuple]:
    return select(PartnerCustomer.customer_id).where(PartnerCustomer.partner_id == actor.partner_id)


def visible_contracts(actor: Actor) -> Select[tuple[Contract]]:
    """The one query every contract read starts from."""
    query = select(Contract)
    if actor.is_provider:
        return query
    if actor.kind == "customer" and actor.customer_id is not None:
        return query.where(Contract.customer_id == actor.customer_id)
    if actor.kind == "partner" and actor.partner_id is not None:
        return query.where(Contract.customer_id.in_(_managed_customer_ids(actor)))
    return query.where(False)


def visible_customers(actor: Actor) -> Select[tuple[Customer]]:
    query = select(Customer)
    if actor.is_provider:
        return query
    if actor.kind == "customer" and actor.customer_id is not None:
        return query.where(Customer.id == actor.customer_id)
    if actor.kind == "partner" and actor.partner_id is not None:
        return query.where(Customer.id.in_(_managed_customer_ids(actor)))
    return query.where(False)
