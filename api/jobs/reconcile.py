"""Ledger reconciliation: every balance row must equal the sum of its period's ledger entries.

`consumed` is the sum of consume, adjust and reverse entries, except reversals of overage entries;
`overage` is the sum of overage entries net of their reversals."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from sqlalchemy import case, func, select
from sqlalchemy.orm import aliased

from api.models import EntitlementBalance, LedgerEntry, LedgerKind
from api.services.context import AppContext

__all__ = ["COLUMNS", "Mismatch", "reconcile_ledger"]

COLUMNS = ("consumed", "overage")


@dataclass(frozen=True)
class Mismatch:
    contract_id: uuid.UUID
    bucket_code: str
    period_start: date
    balance: int | None  # None: entries exist but no balance row
    ledger: int
    column: str = "consumed"  # the balance column that disagrees: "consumed" or "overage"


async def reconcile_ledger(ctx: AppContext) -> list[Mismatch]:
    """Compare balances with ledger sums in one read transaction (a consistent snapshot)."""
    reversed_entry = aliased(LedgerEntry)
    column = case(
        (
            (LedgerEntry.kind == LedgerKind.OVERAGE)
            | ((LedgerEntry.kind == LedgerKind.REVERSE) & (reversed_entry.kind == LedgerKind.OVERAGE)),
            "overage",
        ),
        else_="consumed",
    ).label("column")
    async with ctx.db.read() as session:
        sums: dict[tuple[uuid.UUID, str, date, str], int] = {}
        for c, b, p, col, total in await session.execute(
            select(
                LedgerEntry.contract_id,
                LedgerEntry.bucket_code,
                LedgerEntry.period_start,
                column,
                func.sum(LedgerEntry.quantity),
            )
            .outerjoin(reversed_entry, reversed_entry.id == LedgerEntry.reverses_entry_id)
            .group_by(LedgerEntry.contract_id, LedgerEntry.bucket_code, LedgerEntry.period_start, column)
        ):
            sums[(c, b, p, col)] = int(total)
        balances: dict[tuple[uuid.UUID, str, date], tuple[int, int]] = {
            (c, b, p): (int(consumed), int(overage or 0))
            for c, b, p, consumed, overage in await session.execute(
                select(
                    EntitlementBalance.contract_id,
                    EntitlementBalance.bucket_code,
                    EntitlementBalance.period_start,
                    EntitlementBalance.consumed,
                    EntitlementBalance.overage,
                )
            )
        }
    keys = {key[:3] for key in sums} | set(balances)
    mismatches = []
    for key in sorted(keys, key=str):
        row = balances.get(key)
        for index, name in enumerate(COLUMNS):
            ledger_total = sums.get((*key, name), 0)
            balance = None if row is None else row[index]
            if (balance or 0) != ledger_total or (balance is None and ledger_total):
                mismatches.append(Mismatch(*key, balance=balance, ledger=ledger_total, column=name))
    return mismatches
