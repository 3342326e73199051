"""Loading program files into the database and reading the rules back."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from api.models import Contract, PlanRecord, ProgramRecord
from api.programs.loader import ParsedProgram
from api.programs.schema import Bucket, Plan, Program
from api.services import audit, inputs, policy
from api.services.context import Actor, AppContext
from api.services.errors import Conflict, ErrorCode, NotFound, ValidationFailed

__all__ = [
    "LoadOutcome",
    "PlanView",
    "WITHOUT_DOCUMENT",
    "get_plans_by_ids",
    "get_program",
    "list_programs",
    "load_programs",
    "parse_documents",
    "plan_view",
    "program_model",
]

# A plan in use may change its wording, not the terms its contracts were signed on.
_BINDING_BUCKET_FIELDS = ("unit", "allowance", "period", "anchor", "increment")


@dataclass(frozen=True)
class LoadOutcome:
    code: str
    status: str  # "created", "updated" or "unchanged"
    program: ProgramRecord


@dataclass(frozen=True)
class PlanView:
    """A plan row together with its rules and its program's."""

    record: PlanRecord
    program_record: ProgramRecord
    program: Program

    @property
    def rules(self) -> Plan:
        return self.program.plans[self.record.code]

    def bucket(self, code: str) -> Bucket | None:
        return self.rules.buckets.get(code)


_PARSED: dict[str, Program] = {}


def program_model(record: ProgramRecord) -> Program:
    """The validated Program of a stored record, parsed once per source version."""
    program = _PARSED.get(record.source_sha256)
    if program is None:
        program = _PARSED[record.source_sha256] = Program.model_validate(record.document)
    return program


def plan_view(plan: PlanRecord, program: ProgramRecord) -> PlanView:
    return PlanView(plan, program, program_model(program))


# Queries that read program rows beside many others leave the document (9-23 KB of JSON, decoded again for
# every row that carries it) out; `parse_documents` then reads only those not yet parsed in this process.
WITHOUT_DOCUMENT = defer(ProgramRecord.document)


async def parse_documents(session: AsyncSession, records: Iterable[ProgramRecord]) -> None:
    """Makes `program_model` of each record a cache hit, reading (in one statement) and parsing only the
    documents of versions this process has not parsed yet."""
    missing = {record.source_sha256 for record in records} - _PARSED.keys()
    if missing:
        found = await session.execute(
            select(ProgramRecord.source_sha256, ProgramRecord.document).where(ProgramRecord.source_sha256.in_(missing))
        )
        for sha, document in found:
            _PARSED.setdefault(sha, Program.model_validate(document))


async def load_programs(ctx: AppContext, actor: Actor, parsed: Sequence[ParsedProgram]) -> list[LoadOutcome]:
    """Load several programs in one transaction: all of them, or none."""
    policy.require(actor, "program.load")
    for item in parsed:
        if len(item.file) > 500:
            raise ValidationFailed(f"file name has {len(item.file)} characters; at most 500", field="fileName")
        inputs.text(ctx, item.file, "fileName")
    codes = [p.program.code for p in parsed]
    duplicates = sorted({c for c in codes if codes.count(c) > 1})
    if duplicates:
        raise ValidationFailed(f"program code {duplicates[0]!r} is defined by more than one file", field="code")
    async with ctx.db.write() as session:
        outcomes = [await _load_one(session, ctx, item) for item in parsed]
        for outcome in outcomes:
            if outcome.status != "unchanged":
                await audit.record(
                    session, ctx, actor, f"program.{outcome.status}", target_type="program",
                    target_id=outcome.program.id, detail={"code": outcome.code, "version": outcome.program.version},
                )
        return outcomes


async def _load_one(session: AsyncSession, ctx: AppContext, parsed: ParsedProgram) -> LoadOutcome:
    program = parsed.program
    record = await session.scalar(select(ProgramRecord).where(ProgramRecord.code == program.code))
    document = program.model_dump(mode="json")
    if record is not None and record.source_sha256 == parsed.sha256:
        return LoadOutcome(program.code, "unchanged", record)

    status = "updated"
    if record is None:
        status = "created"
        record = ProgramRecord(code=program.code)
        session.add(record)
    else:
        await _refuse_changes_to_plans_in_use(session, parsed, record)

    record.name = program.name
    record.provider = program.provider
    record.version = program.version
    record.document = document
    record.source = parsed.source
    record.source_sha256 = parsed.sha256
    record.source_file = parsed.file
    record.loaded_at = ctx.now()
    await session.flush()

    existing = {
        plan.code: plan
        for plan in await session.scalars(select(PlanRecord).where(PlanRecord.program_id == record.id))
    }
    for code, plan in program.plans.items():
        row = existing.pop(code, None)
        if row is None:
            session.add(PlanRecord(program_id=record.id, code=code, name=plan.name))
        else:
            row.name = plan.name
    for row in existing.values():
        await session.delete(row)
    await session.flush()
    return LoadOutcome(program.code, status, record)


async def _refuse_changes_to_plans_in_use(session: AsyncSession, parsed: ParsedProgram, record: ProgramRecord) -> None:
    old = program_model(record)
    new = parsed.program
    in_use = await session.execute(
        select(PlanRecord.code, func.count(Contract.id))
        .join(Contract, Contract.plan_id == PlanRecord.id)
        .where(PlanRecord.program_id == record.id)
        .group_by(PlanRecord.code)
    )
    for plan_code, contracts in in_use:
        where = f"{parsed.file}: plans.{plan_code}"
        if plan_code not in new.plans:
            raise Conflict(
                f"{where}: the plan cannot be removed, {contracts} contract(s) use it",
                code=ErrorCode.PROGRAM_IN_USE,
                field=f"plans.{plan_code}",
            )
        for bucket_code, bucket in old.plans[plan_code].buckets.items():
            changed = new.plans[plan_code].buckets.get(bucket_code)
            if changed is None:
                raise Conflict(
                    f"{where}.buckets.{bucket_code}: the bucket cannot be removed, {contracts} contract(s) use the plan",
                    code=ErrorCode.PROGRAM_IN_USE,
                    field=f"plans.{plan_code}.buckets.{bucket_code}",
                )
            for name in _BINDING_BUCKET_FIELDS:
                if getattr(bucket, name) != getattr(changed, name):
                    raise Conflict(
                        f"{where}.buckets.{bucket_code}.{name}: cannot change from {getattr(bucket, name)} to "
                        f"{getattr(changed, name)} while {contracts} contract(s) use the plan; add a new plan instead",
                        code=ErrorCode.PROGRAM_IN_USE,
                        field=f"plans.{plan_code}.buckets.{bucket_code}.{name}",
                    )


async def list_programs(
    ctx: AppContext, actor: Actor, *, code: str | None = None
) -> list[tuple[ProgramRecord, list[PlanView]]]:
    """Programs by code, each with its plans in the order the program file gives them."""
    policy.require(actor, "program.read")
    inputs.optional_text(ctx, code, "code")
    query = select(ProgramRecord).order_by(ProgramRecord.code)
    if code is not None:
        query = query.where(ProgramRecord.code == code)
    async with ctx.db.read() as session:
        records = list(await session.scalars(query))
        plans = await session.scalars(select(PlanRecord).where(PlanRecord.program_id.in_([r.id for r in records])))
        by_program: dict[uuid.UUID, dict[str, PlanRecord]] = {}
        for plan in plans:
            by_program.setdefault(plan.program_id, {})[plan.code] = plan
    result = []
    for record in records:
        rows = by_program.get(record.id, {})
        order = program_model(record).plans
        result.append((record, [plan_view(rows[c], record) for c in order if c in rows]))
    return result


async def get_program(ctx: AppContext, actor: Actor, code: str) -> tuple[ProgramRecord, list[PlanView]]:
    found = await list_programs(ctx, actor, code=code)
    if not found:
        raise NotFound("program", repr(code), field="code")
    return found[0]


async def get_plans_by_ids(ctx: AppContext, actor: Actor, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, PlanView]:
    policy.require(actor, "program.read")
    async with ctx.db.read() as session:
        rows = await session.execute(
            select(PlanRecord, ProgramRecord)
            .join(ProgramRecord, ProgramRecord.id == PlanRecord.program_id)
            .where(PlanRecord.id.in_(set(ids)))
        )
        return {plan.id: plan_view(plan, program) for plan, program in rows}
