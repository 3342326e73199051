"""Contracts and the entitlement periods they give: creating, reading, and balances per period."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.domain.catalog import Offer, contract_catalog, plan_catalog
from api.domain.periods import Period, period_containing, periods_of_term
from api.models import Contract, Customer, EntitlementBalance, PlanRecord, ProgramRecord, StaffRole, User, UserKind
from api.programs.schema import Bucket
from api.services import audit, inputs, policy
from api.services.context import Actor, AppContext
from api.services.errors import Conflict, NotFound, ValidationFailed, check_email
from api.services.paging import MAX_PAGE, Page, by_key, cut_page, encode_key_cursor
from api.services.programs import WITHOUT_DOCUMENT, PlanView, parse_documents, plan_view

__all__ = [
    "ContractView",
    "EntitlementPeriod",
    "NewContract",
    "bucket_periods",
    "contract_cursor",
    "contract_options",
    "create_contract",
    "current_entitlements",
    "entitlements",
    "entitlements_for_contracts",
    "get_contract",
    "get_contracts_by_ids",
    "get_staff_by_ids",
    "list_contracts",
    "load_contract_view",
    "page_contracts",
]

_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
_MAX_FEE = Decimal(10) ** 12  # the Money column is Numeric(14, 2)
# Buckets with their own allowance, or activities on an order: a plan has a handful; a list is bounded before it is read.
_MAX_LISTED = 500


@dataclass(frozen=True)
class NewContract:
    reference: str
    customer_id: uuid.UUID
    program_code: str
    plan_code: str
    effective_date: date
    end_date: date
    monthly_fee: Decimal
    currency: str
    custom_allowances: dict[str, int] = field(default_factory=dict)
    client_manager_email: str | None = None
    # The activities listed on the order, from the plan's catalog; None: the plan's whole catalog.
    catalog: Sequence[str] | None = None


@dataclass(frozen=True)
class ContractView:
    contract: Contract
    plan: PlanView

    def allowance(self, bucket_code: str) -> int:
        """The allowance per period of a bucket, in ledger units."""
        bucket = self.plan.rules.buckets[bucket_code]
        if bucket.allowance == "contract":
            return int(self.contract.custom_allowances[bucket_code])
        return int(bucket.to_ledger_units(bucket.allowance))

    def period(self, bucket: Bucket, day: date) -> Period | None:
        return period_containing(
            day,
            effective_date=self.contract.effective_date,
            end_date=self.contract.end_date,
            length=bucket.period,
            anchor=bucket.anchor,
        )

    def today(self, ctx: AppContext) -> date:
        return ctx.today(self.plan.program.timezone)

    def catalog(self) -> dict[str, Offer]:
        """The activities this contract may book: the plan's catalog, narrowed to its order's list."""
        return contract_catalog(self.plan.program, self.plan.rules, self.contract.catalog)

    def balance(
        self, ctx: AppContext, code: str, period: Period, consumed: int, overage: int = 0
    ) -> EntitlementPeriod:
        """A bucket's period with what was consumed in it, as of today."""
        warning = self.plan.rules.expiry_warning_days
        return EntitlementPeriod(
            self.contract.id, code, self.plan.rules.buckets[code], period, self.allowance(code), consumed,
            self.today(ctx), overage=overage,
            warning_days=ctx.settings.expiry_warning_days if warning is None else warning,
        )


@dataclass(frozen=True)
class EntitlementPeriod:
    """One bucket over one period: quantities in ledger units (activities, or minutes for hours)."""

    contract_id: uuid.UUID
    bucket_code: str
    bucket: Bucket
    period: Period
    allowance: int
    consumed: int
    today: date
    # Minutes worked past an empty bucket, where the plan records them rather than refusing (never hidden).
    overage: int = 0
    # How many days before its end a period with units left counts as expiring soon.
    warning_days: int = 0

    @property
    def remaining(self) -> int:
        return self.allowance - self.consumed

    @property
    def ended(self) -> bool:
        return self.today > self.period.end

    @property
    def expired(self) -> int:
        """Units left unused when the period ended: they are gone, never carried over."""
        return self.remaining if self.ended else 0

    @property
    def expires_in_days(self) -> int:
        return (self.period.end - self.today).days

    @property
    def expiring_soon(self) -> bool:
        """The period is under way, ends within the warning days, and units are still unused."""
        return self.period.start <= self.today <= self.period.end and self.remaining > 0 and (
            self.expires_in_days <= self.warning_days
        )


async def create_contract(ctx: AppContext, actor: Actor, new: NewContract) -> Contract:
    policy.require(actor, "contract.create")
    if not _REFERENCE.fullmatch(new.reference):
        raise ValidationFailed(
            f"reference {new.reference[:64]!r} must be 1-64 letters, digits, '.', '_', '/' or '-'", field="reference"
        )
    for value, name in ((new.program_code, "programCode"), (new.plan_code, "planCode")):
        inputs.text(ctx, value, name)
    inputs.term(ctx, new.effective_date, new.end_date)
    fee = new.monthly_fee
    # Compared before any arithmetic: "1e1000000" is refused here without being expanded.
    if not fee.is_finite() or not 0 <= fee < _MAX_FEE or fee != fee.quantize(Decimal("0.01")):
        raise ValidationFailed(
            f"monthly fee {fee} must be zero or more and below {_MAX_FEE:,}, with at most 2 decimals",
            field="monthlyFee",
        )
    if not re.fullmatch(r"[A-Z]{3}", new.currency):
        raise ValidationFailed(f"currency {new.currency[:8]!r} must be an ISO 4217 code such as EUR", field="currency")
    for code in inputs.items(new.custom_allowances, "customAllowances", most=_MAX_LISTED):
        inputs.text(ctx, code, "customAllowances")
    if new.catalog is not None:
        for code in inputs.items(new.catalog, "catalog", most=_MAX_LISTED):
            inputs.text(ctx, code, "catalog")

    async with ctx.db.write() as session:
        if await session.get(Customer, new.customer_id) is None:
            raise NotFound("customer", new.customer_id, field="customerId")
        row = (
            await session.execute(
                select(PlanRecord, ProgramRecord)
                .join(ProgramRecord, ProgramRecord.id == PlanRecord.program_id)
                .where(ProgramRecord.code == new.program_code, PlanRecord.code == new.plan_code)
            )
        ).first()
        if row is None:
            raise NotFound("plan", f"{new.program_code}/{new.plan_code}", field="planCode")
        plan = plan_view(*row)
        _check_custom_allowances(plan, new.custom_allowances)
        order_catalog = _check_order_catalog(plan, new.catalog)
        client_manager_id = await _client_manager(session, new.client_manager_email)
        if await session.scalar(select(Contract.id).where(Contract.reference == new.reference)):
            raise Conflict(f"a contract with reference {new.reference!r} already exists", field="reference")
        contract = Contract(
            reference=new.reference,
            customer_id=new.customer_id,
            plan_id=plan.record.id,
            effective_date=new.effective_date,
            end_date=new.end_date,
            monthly_fee=fee,
            currency=new.currency,
            custom_allowances=dict(new.custom_allowances),
            catalog=order_catalog,
            client_manager_id=client_manager_id,
            created_at=ctx.now(),
        )
        session.add(contract)
        await session.flush()
        await audit.record(
            session, ctx, actor, "contract.create", target_type="contract", target_id=contract.id,
            on_behalf_of_customer_id=contract.customer_id,
            detail={"reference": contract.reference, "plan": f"{new.program_code}/{new.plan_code}"},
        )
        return contract


async def _client_manager(session: AsyncSession, email: str | None) -> uuid.UUID | None:
    """The staff user a contract is assigned to, named by e-mail address."""
    if email is None:
        return None
    email = email.strip().lower()
    check_email(email, field="clientManagerEmail")
    user = await session.scalar(
        select(User).where(
            User.email == email,
            User.kind == UserKind.STAFF,
            User.staff_role.in_([StaffRole.CLIENT_MANAGER, StaffRole.ADMIN]),
            User.active,
        )
    )
    if user is None:
        raise ValidationFailed(f"no active client manager has the e-mail address {email}", field="clientManagerEmail")
    return user.id


async def get_staff_by_ids(ctx: AppContext, actor: Actor, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, User]:
    """Staff members named on contracts the caller can see (client managers are no secret to their customers)."""
    policy.require(actor, "contract.read")
    async with ctx.db.read() as session:
        rows = await session.scalars(select(User).where(User.id.in_(set(ids)), User.kind == UserKind.STAFF))
        return {row.id: row for row in rows}


def _check_custom_allowances(plan: PlanView, given: dict[str, int]) -> None:
    buckets = plan.rules.buckets
    for code, amount in given.items():
        bucket = buckets.get(code)
        if bucket is None:
            raise ValidationFailed(
                f"plan {plan.record.code!r} has no bucket {code!r} (it has: {', '.join(buckets) or 'none'})",
                field="customAllowances",
            )
        if bucket.allowance != "contract":
            raise ValidationFailed(
                f"bucket {code!r} has a fixed allowance in plan {plan.record.code!r}; it cannot be set per contract",
                field="customAllowances",
            )
        if amount <= 0 or amount % bucket.increment:
            raise ValidationFailed(
                f"allowance for {code!r} must be a positive multiple of {bucket.increment} {bucket.ledger_unit}",
                field="customAllowances",
            )
    missing = [code for code, bucket in buckets.items() if bucket.allowance == "contract" and code not in given]
    if missing:
        raise ValidationFailed(
            f"plan {plan.record.code!r} leaves the allowance of {', '.join(missing)} to the contract: set it",
            field="customAllowances",
        )


def _check_order_catalog(plan: PlanView, given: Sequence[str] | None) -> list[str] | None:
    """An order may list activities of its plan's catalog: each once, at least one."""
    if given is None:
        return None
    offered = plan_catalog(plan.program, plan.rules)
    if not given:
        raise ValidationFailed(
            "an order's catalog lists at least one activity; leave it out to offer the plan's whole catalog",
            field="catalog",
        )
    for code in given:
        if code not in offered:
            raise ValidationFailed(
                f"activity {code!r} is not in the catalog of plan {plan.record.code!r} "
                f"(it has: {', '.join(offered) or 'none'})",
                field="catalog",
            )
    repeated = sorted(code for code, times in Counter(given).items() if times > 1)
    if repeated:
        raise ValidationFailed(f"activity {repeated[0]!r} is listed twice", field="catalog")
    return list(given)


def _contract_views_query(actor: Actor):  # type: ignore[no-untyped-def]
    return (
        policy.visible_contracts(actor)
        .add_columns(PlanRecord, ProgramRecord)
        .join(PlanRecord, PlanRecord.id == Contract.plan_id)
        .join(ProgramRecord, ProgramRecord.id == PlanRecord.program_id)
        .options(WITHOUT_DOCUMENT)
    )


async def load_contract_view(session: AsyncSession, actor: Actor, contract_id: uuid.UUID) -> ContractView:
    row = (await session.execute(_contract_views_query(actor).where(Contract.id == contract_id))).first()
    if row is None:
        raise NotFound("contract", contract_id, field="contractId")
    contract, plan, program = row
    await parse_documents(session, [program])
    return ContractView(contract, plan_view(plan, program))


async def list_contracts(
    ctx: AppContext, actor: Actor, *, customer_id: uuid.UUID | None = None, customer_ids: Sequence[uuid.UUID] = ()
) -> list[Contract]:
    """The contracts the actor sees of one customer, or of several, by reference: a customer has a handful, so
    this is not paged (`page_contracts` is, for every contract)."""
    policy.require(actor, "contract.read")
    wanted = {*customer_ids, *([customer_id] if customer_id is not None else [])}
    query = policy.visible_contracts(actor).where(Contract.customer_id.in_(wanted)).order_by(Contract.reference)
    async with ctx.db.read() as session:
        return list(await session.scalars(query))


def contract_cursor(contract: Contract) -> str:
    return encode_key_cursor(contract.reference)


async def page_contracts(
    ctx: AppContext,
    actor: Actor,
    *,
    customer_id: uuid.UUID | None = None,
    customer_ids: Sequence[uuid.UUID] | None = None,
    reference: str | None = None,
    first: int = 50,
    after: str | None = None,
) -> Page[Contract]:
    """The contracts the actor sees, by reference, paged by keyset on it (references are unique); optionally
    one customer's, several customers', or those whose reference starts with `reference`."""
    policy.require(actor, "contract.read")
    query = by_key(policy.visible_contracts(actor), Contract.reference, first=first, after=after)
    if customer_id is not None:
        query = query.where(Contract.customer_id == customer_id)
    if customer_ids is not None:
        query = query.where(Contract.customer_id.in_(set(customer_ids)))
    prefix = inputs.optional_text(ctx, reference, "reference")
    if prefix:
        query = query.where(Contract.reference.startswith(prefix.strip(), autoescape=True))
    async with ctx.db.read() as session:
        found = list(await session.scalars(query))
    return Page(*cut_page(found, first, contract_cursor))


async def contract_options(ctx: AppContext, actor: Actor, chosen: uuid.UUID | None = None) -> list[Contract]:
    """The contracts a picker offers, by reference: the first page of those the actor sees, and the chosen one
    wherever it sorts. Bounded, however many contracts there are."""
    found = (await page_contracts(ctx, actor, first=MAX_PAGE)).items
    if chosen is not None and chosen not in {c.id for c in found}:
        found += (await get_contracts_by_ids(ctx, actor, [chosen])).values()
    return sorted(found, key=lambda c: c.reference)


async def get_contract(ctx: AppContext, actor: Actor, contract_id: uuid.UUID) -> Contract:
    found = await get_contracts_by_ids(ctx, actor, [contract_id])
    if contract_id not in found:
        raise NotFound("contract", contract_id, field="id")
    return found[contract_id]


async def get_contracts_by_ids(
    ctx: AppContext, actor: Actor, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Contract]:
    policy.require(actor, "contract.read")
    async with ctx.db.read() as session:
        rows = await session.scalars(policy.visible_contracts(actor).where(Contract.id.in_(set(ids))))
        return {row.id: row for row in rows}


async def entitlements_for_contracts(
    ctx: AppContext, actor: Actor, requests: Sequence[tuple[uuid.UUID, date | None]]
) -> dict[tuple[uuid.UUID, date | None], list[EntitlementPeriod]]:
    """Each contract's periods containing the given day (today when None), in three statements for any number."""
    policy.require(actor, "contract.read")
    return (await _entitlements(ctx, actor, requests))[1]


async def current_entitlements(
    ctx: AppContext, actor: Actor, contract_ids: Sequence[uuid.UUID]
) -> list[tuple[ContractView, list[EntitlementPeriod]]]:
    """Each visible contract with its buckets' periods containing today (none where the contract is not in
    force today), in three statements for any number."""
    policy.require(actor, "contract.read")
    views, found = await _entitlements(ctx, actor, [(ident, None) for ident in contract_ids])
    return [(views[ident], found[(ident, None)]) for ident in contract_ids if ident in views]


async def _entitlements(
    ctx: AppContext, actor: Actor, requests: Sequence[tuple[uuid.UUID, date | None]]
) -> tuple[dict[uuid.UUID, ContractView], dict[tuple[uuid.UUID, date | None], list[EntitlementPeriod]]]:
    async with ctx.db.read() as session:
        views = await _views(session, actor, {contract_id for contract_id, _ in requests})
        wanted: list[tuple[tuple[uuid.UUID, date | None], ContractView, str, Period]] = []
        for key in requests:
            view = views.get(key[0])
            if view is None:
                continue
            day = key[1] or view.today(ctx)
            for code, bucket in view.plan.rules.buckets.items():
                period = view.period(bucket, day)
                if period is not None:
                    wanted.append((key, view, code, period))
        consumed = await _consumed(session, [(v.contract.id, code, p.start) for _, v, code, p in wanted])

    result: dict[tuple[uuid.UUID, date | None], list[EntitlementPeriod]] = {key: [] for key in requests}
    for key, view, code, period in wanted:
        result[key].append(view.balance(ctx, code, period, *consumed.get((view.contract.id, code, period.start), (0, 0))))
    return views, result


async def _views(session: AsyncSession, actor: Actor, ids: set[uuid.UUID]) -> dict[uuid.UUID, ContractView]:
    """The visible contracts among `ids` with their plans, in two statements: program documents are read only
    when this process has not parsed them yet."""
    rows = (
        await session.execute(
            policy.visible_contracts(actor)
            .add_columns(PlanRecord)
            .join(PlanRecord, PlanRecord.id == Contract.plan_id)
            .where(Contract.id.in_(ids))
        )
    ).all()
    if not rows:
        return {}
    records = {
        record.id: record
        for record in await session.scalars(
            select(ProgramRecord)
            .where(ProgramRecord.id.in_({plan.program_id for _, plan in rows}))
            .options(WITHOUT_DOCUMENT)
        )
    }
    await parse_documents(session, records.values())
    return {contract.id: ContractView(contract, plan_view(plan, records[plan.program_id])) for contract, plan in rows}


async def _consumed(
    session: AsyncSession, keys: Sequence[tuple[uuid.UUID, str, date]]
) -> dict[tuple[uuid.UUID, str, date], tuple[int, int]]:
    """(consumed, overage) of each balance row asked for, in one statement whose size grows with the number
    of contracts and period starts, not of their combinations."""
    wanted = set(keys)
    if not wanted:
        return {}
    rows = await session.execute(
        select(
            EntitlementBalance.contract_id,
            EntitlementBalance.bucket_code,
            EntitlementBalance.period_start,
            EntitlementBalance.consumed,
            EntitlementBalance.overage,
        ).where(
            EntitlementBalance.contract_id.in_({contract_id for contract_id, _, _ in wanted}),
            EntitlementBalance.period_start.in_({start for _, _, start in wanted}),
        )
    )
    return {(c, b, s): (consumed, overage) for c, b, s, consumed, overage in rows if (c, b, s) in wanted}


async def entitlements(
    ctx: AppContext, actor: Actor, contract_id: uuid.UUID, on: date | None = None
) -> list[EntitlementPeriod]:
    found = await entitlements_for_contracts(ctx, actor, [(contract_id, on)])
    return found[(contract_id, on)]


async def bucket_periods(ctx: AppContext, actor: Actor, contract_id: uuid.UUID, bucket_code: str) -> list[EntitlementPeriod]:
    """Every period of the contract term for one bucket, with what was consumed and what expired."""
    policy.require(actor, "contract.read")
    async with ctx.db.read() as session:
        view = await load_contract_view(session, actor, contract_id)
        bucket = view.plan.bucket(bucket_code)
        if bucket is None:
            raise ValidationFailed(
                f"plan {view.plan.record.code!r} has no bucket {bucket_code!r}", field="bucket"
            )
        rows = await session.execute(
            select(EntitlementBalance.period_start, EntitlementBalance.consumed, EntitlementBalance.overage).where(
                EntitlementBalance.contract_id == contract_id, EntitlementBalance.bucket_code == bucket_code
            )
        )
        balances = {start: (consumed, overage) for start, consumed, overage in rows}
    return [
        view.balance(ctx, bucket_code, period, *balances.get(period.start, (0, 0)))
        for period in periods_of_term(
            effective_date=view.contract.effective_date,
            end_date=view.contract.end_date,
            length=bucket.period,
            anchor=bucket.anchor,
        )
    ]
