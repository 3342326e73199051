"""GraphQL of programs: programs and their plans, buckets, the activity catalog and support calendars."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

import strawberry
import strawberry.scalars
from strawberry.types import Info

from api.domain.catalog import Offer
from api.graphql.context import RequestContext
from api.graphql.errors import (
    ConflictError,
    ErrorCodeEnum,
    PermissionDeniedError,
    UserError,
    ValidationError,
    mutation,
    result_union,
)
from api.graphql.plan_terms import PlanTerms
from api.models import ProgramRecord
from api.programs.loader import ProgramFileError, parse_program
from api.programs.schema import Activity, Bucket
from api.services import bookings, inputs, programs, tickets
from api.services.errors import ErrorCode, NotFound
from api.services.programs import PlanView, program_model

__all__ = [
    "ActivityType",
    "BucketType",
    "EntitlementUnit",
    "LedgerUnit",
    "LoadProgramInput",
    "LoadProgramResult",
    "LoadProgramSuccess",
    "OpenWindowType",
    "PeriodAnchor",
    "PeriodLength",
    "PlanType",
    "ProgramFileInvalid",
    "ProgramIssue",
    "ProgramMutation",
    "ProgramQuery",
    "ProgramType",
]


@strawberry.enum(description="What a bucket counts.")
class EntitlementUnit(enum.Enum):
    ACTIVITIES = "activities"
    HOURS = "hours"


@strawberry.enum(description="The unit of every quantity of a bucket in this API: activities, or minutes for hours.")
class LedgerUnit(enum.Enum):
    ACTIVITIES = "activities"
    MINUTES = "minutes"


@strawberry.enum
class PeriodLength(enum.Enum):
    QUARTER = "quarter"
    YEAR = "year"


@strawberry.enum(description="Where periods are counted from.")
class PeriodAnchor(enum.Enum):
    CONTRACT = "contract"
    CALENDAR = "calendar"


@strawberry.type(name="Bucket", description="An entitlement bucket of a plan.")
class BucketType:
    code: str
    name: str
    description: str
    unit: EntitlementUnit
    ledger_unit: LedgerUnit
    allowance: int | None = strawberry.field(
        description="Per period, in ledger units; null when each contract sets its own."
    )
    period: PeriodLength
    anchor: PeriodAnchor
    rollover: str
    increment: int = strawberry.field(description="The smallest amount consumed, in ledger units.")
    fair_use: bool
    best_effort: bool

    @classmethod
    def build(cls, code: str, bucket: Bucket) -> BucketType:
        return cls(
            code=code,
            name=bucket.name,
            description=bucket.description,
            unit=EntitlementUnit(bucket.unit),
            ledger_unit=LedgerUnit(bucket.ledger_unit),
            allowance=None if bucket.allowance == "contract" else int(bucket.to_ledger_units(bucket.allowance)),
            period=PeriodLength(bucket.period),
            anchor=PeriodAnchor(bucket.anchor),
            rollover=bucket.rollover,
            increment=bucket.increment,
            fair_use=bucket.fair_use,
            best_effort=bucket.best_effort,
        )


@strawberry.type(name="Plan", description="A tier or package of a program, with every term of it.")
class PlanType(PlanTerms):
    id: strawberry.ID
    code: str
    name: str
    description: str
    program_code: str
    sla: bool
    buckets: list[BucketType]

    @classmethod
    def build(cls, view: PlanView) -> PlanType:
        rules = view.rules
        return cls(
            id=strawberry.ID(str(view.record.id)),
            code=view.record.code,
            name=rules.name,
            description=rules.description,
            program_code=view.program.code,
            sla=rules.sla,
            buckets=[BucketType.build(code, bucket) for code, bucket in rules.buckets.items()],
            **PlanTerms.terms(view),
        )


@strawberry.type(name="Program", description="A provider's support program, loaded from a program file.")
class ProgramType:
    code: str
    name: str
    provider: str
    version: str
    description: str
    timezone: str
    currency: str
    source_file: str
    loaded_at: datetime
    plans: list[PlanType]

    @classmethod
    def build(cls, record: ProgramRecord, plans: list[PlanView]) -> ProgramType:
        program = program_model(record)
        return cls(
            code=record.code,
            name=record.name,
            provider=record.provider,
            version=record.version,
            description=program.description,
            timezone=program.timezone,
            currency=program.currency,
            source_file=record.source_file,
            loaded_at=record.loaded_at,
            plans=[PlanType.build(view) for view in plans],
        )


@strawberry.type(
    name="Activity",
    description="A catalog activity: advisory work sized in small activities, or an expert service in hours.",
)
class ActivityType:
    code: str
    name: str
    description: str
    category: str
    deliverables: list[str]
    unit: EntitlementUnit
    size: Decimal = strawberry.field(description="What one booking uses, in small activities or hours.")
    bucket: str | None = strawberry.field(
        description="The bucket a booking is charged to; null in a program's whole catalog, read without a plan."
    )
    ledger_unit: LedgerUnit | None
    cost: int | None = strawberry.field(
        description="What one booking consumes from the bucket, in its ledger unit (activities, or minutes)."
    )

    @classmethod
    def build(cls, code: str, activity: Activity, offer: Offer | None = None) -> ActivityType:
        return cls(
            code=code,
            name=activity.name,
            description=activity.description,
            category=activity.category,
            deliverables=list(activity.deliverables),
            unit=EntitlementUnit(activity.unit),
            size=activity.size,
            bucket=None if offer is None else offer.bucket_code,
            ledger_unit=None if offer is None else LedgerUnit(offer.bucket.ledger_unit),
            cost=None if offer is None else offer.units,
        )


@strawberry.type(name="OpenWindow", description="An interval during which a support calendar's clock runs.")
class OpenWindowType:
    start: datetime
    end: datetime


@strawberry.input
class LoadProgramInput:
    source: str = strawberry.field(description="The program file's TOML text.")
    file_name: str = "program.toml"


@strawberry.type
class LoadProgramSuccess:
    program: ProgramType
    status: str = strawberry.field(description="created, updated or unchanged")


@strawberry.type
class ProgramIssue:
    file: str
    key: str
    reason: str


@strawberry.type(description="The program file was refused as a whole; nothing was loaded.")
class ProgramFileInvalid(UserError):
    issues: list[ProgramIssue]


LoadProgramResult = result_union(
    "LoadProgramResult", LoadProgramSuccess, ProgramFileInvalid, ValidationError, ConflictError, PermissionDeniedError
)


@strawberry.type
class ProgramQuery:
    @strawberry.field(description="Every loaded program with its plans.")
    async def programs(self, info: Info[RequestContext, None]) -> list[ProgramType]:
        ctx = info.context
        return [ProgramType.build(r, plans) for r, plans in await programs.list_programs(ctx.app, ctx.actor)]

    @strawberry.field
    async def program(self, info: Info[RequestContext, None], code: str) -> ProgramType | None:
        ctx = info.context
        found = await programs.list_programs(ctx.app, ctx.actor, code=code)
        return ProgramType.build(*found[0]) if found else None

    @strawberry.field(
        description="A program's activity catalog; with `planCode`, what that plan offers, each activity with the "
        "bucket it is charged to and what one booking costs. Null for an unknown program or plan."
    )
    async def activity_catalog(
        self, info: Info[RequestContext, None], program_code: str, plan_code: str | None = None
    ) -> list[ActivityType] | None:
        ctx = info.context
        try:
            items = await bookings.activity_catalog(ctx.app, ctx.actor, program_code, plan_code)
        except NotFound:
            return None
        return [ActivityType.build(item.code, item.activity, item.offer) for item in items]

    @strawberry.field(description="When a program's support calendar is open, day by day in its own time zone.")
    async def calendar_windows(
        self,
        info: Info[RequestContext, None],
        program_code: str,
        calendar: str,
        from_date: date,
        to_date: date,
    ) -> list[OpenWindowType]:
        ctx = info.context
        windows = await tickets.calendar_windows(ctx.app, ctx.actor, program_code, calendar, from_date, to_date)
        return [OpenWindowType(start=start, end=end) for start, end in windows]


@strawberry.type
class ProgramMutation:
    @mutation(description="Load or update a program from its TOML text; a bad file loads nothing.")
    async def load_program(self, info: Info[RequestContext, None], input: LoadProgramInput) -> LoadProgramResult:
        ctx = info.context
        try:
            parsed = parse_program(input.source, file=input.file_name, limits=inputs.limits(ctx.app))
            [outcome] = await programs.load_programs(ctx.app, ctx.actor, [parsed])
            record, plans = await programs.get_program(ctx.app, ctx.actor, outcome.code)
        except ProgramFileError as exc:
            return ProgramFileInvalid(
                code=ErrorCodeEnum(ErrorCode.INVALID),
                message=str(exc),
                field="source",
                issues=[ProgramIssue(file=i.file, key=i.key, reason=i.reason) for i in exc.issues],
            )
        return LoadProgramSuccess(program=ProgramType.build(record, plans), status=outcome.status)
