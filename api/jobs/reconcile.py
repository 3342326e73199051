"""Ledger reconciliation: every balance row must equal the sum of its period's ledger entries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select

from api.models import EntitlementBalance, LedgerEntry
from api.services.context import AppContext

__all__ = ["Mismatch", "reconcile_ledger"]


@dataclass(frozen=True)
class Mismatch:
    contract_id: uuid.UUID
    bucket_code: str
    period_start: date
    balance: int | None  # None: entries exist but no balance row
    ledger: int


async def reconcile_ledger(ctx: AppContext) -> list[Mismatch]:
    """Compare balances with ledger sums in one read transaction (a consistent snapshot)."""
    async with ctx.db.read() as session:
        sums = {
            (c, b, p): int(total)
            for c, b, p, total in await session.execute(
                select(
                    LedgerEntry.contract_id,
                    LedgerEntry.bucket_code,
                    LedgerEntry.period_start,
                    func.sum(LedgerEntry.quantity),
                ).group_by(LedgerEntry.contract_id, LedgerEntry.bucket_code, LedgerEntry.period_start)
            )
        }
        balances = {
            (c, b, p): consumed
            for c, b, p, consumed in await session.execute(
                select(
                    EntitlementBalance.contract_id,
                    EntitlementBalance.bucket_code,
                    EntitlementBalance.period_start,
                    EntitlementBalance.consumed,
                )
            )
        }
    mismatches = []
    for key in sorted(set(sums) | set(balances), key=str):
        ledger_total = sums.get(key, 0)
        balance = balances.get(key)
        if (balance or 0) != ledger_total or (balance is None and ledger_total):
            mismatches.append(Mismatch(*key, balance=balance, ledger=ledger_total))
    return mismatches
