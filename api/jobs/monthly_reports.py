"""Monthly reports by e-mail: each contract whose plan promises a monthly report (the consumption report,
or an operational report) gets one message per month, to the customer's report contacts (else the
customer's own address) or, for a customer a partner manages, to that partner and never to the customer.

Which plans: `reporting.consumption_report = "monthly"` (the default; the shipped Assure, partner-support,
premium-availability and support-by-plan Enterprise plans say so), or any `reporting.operational_report`
(tiered Premium: weekly and monthly; its weekly lines travel in the monthly message). Plans saying
`consumption_report = "none"` without an operational report get none (support-by-plan Free, tiered
Basic, Essential and Extended).

Each message is queued through the outbox under the key `report:<contract id>:<YYYY-MM>:monthly`, so a
second run, or two workers at once, queue nothing more: the unique key decides. Contracts are read
BATCH at a time with a constant number of statements per batch.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.domain.periods import add_months
from api.domain.reports import month_last_day
from api.mail import build_outgoing, message_id_for
from api.models import Contract, OutboxMessage
from api.services import access, outbox, webhooks
from api.services.context import Actor, AppContext
from api.services.errors import ValidationFailed
from api.services.reports import (
    EARLIEST_MONTH,
    ReportSubject,
    build_reports,
    csv_path,
    load_subjects,
    render_report_email,
    sends_monthly_report,
)

__all__ = [
    "BATCH",
    "KIND",
    "REPORT_ACTOR",
    "MonthlyRun",
    "check_month_over",
    "previous_month",
    "queue_monthly_reports",
    "report_key",
    "run_monthly_reports_job",
]

BATCH = 500
KIND = "monthly_report"
REPORT_ACTOR = Actor.system("monthly-reports", interface="worker")

NO_REPORT = "the plan promises no monthly report"
NOT_OVER = "the month is not over in the program's time zone"
NO_ADDRESS = "no e-mail address to send to"


@dataclass
class MonthlyRun:
    month: date
    contracts: int = 0  # contracts in force on some day of the month
    queued: int = 0  # messages newly queued
    already_queued: int = 0  # queued before (an earlier run, or another worker)
    written: int = 0  # dry run: messages written to files instead
    skipped: Counter[str] = field(default_factory=Counter)  # reason → contracts


def report_key(contract_id: uuid.UUID, month: date) -> str:
    """The outbox key naming the logical message: contract, month and kind."""
    return f"report:{contract_id}:{month:%Y-%m}:monthly"


def previous_month(today: date) -> date:
    return add_months(today.replace(day=1), -1)


def check_month_over(ctx: AppContext, month: date) -> None:
    """Reports go out for months that are over (in UTC; a program west of UTC is checked per contract)."""
    if month < EARLIEST_MONTH:
        raise ValidationFailed(f"month {month:%Y-%m} is before {EARLIEST_MONTH:%Y-%m}", field="month")
    if add_months(month, 1) > ctx.now().date():
        raise ValidationFailed(
            f"month {month:%Y-%m} is not over yet: reports are sent for months that have ended", field="month"
        )


async def queue_monthly_reports(
    ctx: AppContext,
    month: date,
    *,
    dry_run: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> MonthlyRun:
    """Queue the month's reports of every contract in force on some day of it (BATCH at a time), or with
    `dry_run` write each rendered message as an .eml file there and queue nothing. `progress(done, total)`
    is called after each batch."""
    month = month.replace(day=1)
    check_month_over(ctx, month)
    run = MonthlyRun(month)
    in_force = (Contract.effective_date <= month_last_day(month), Contract.end_date >= month)
    async with ctx.db.read() as session:
        total = int(await session.scalar(select(func.count(Contract.id)).where(*in_force)) or 0)
    if dry_run is not None:
        dry_run.mkdir(parents=True, exist_ok=True)
    after: uuid.UUID | None = None
    while True:
        query = select(Contract.id).where(*in_force).order_by(Contract.id).limit(BATCH)
        if after is not None:
            query = query.where(Contract.id > after)
        async with ctx.db.read() as session:
            ids = list(await session.scalars(query))
        if not ids:
            break
        after = ids[-1]
        run.contracts += len(ids)
        await _batch(ctx, month, ids, run, dry_run)
        if progress is not None:
            progress(run.contracts, total)
        if len(ids) < BATCH:
            break
    return run


async def _batch(ctx: AppContext, month: date, ids: list[uuid.UUID], run: MonthlyRun, dry_run: Path | None) -> None:
    """One batch: what is queued already, the contracts with plans and customers, their correspondents and
    their reports, read in one transaction; then the new messages written in one statement."""
    keys = {ident: report_key(ident, month) for ident in ids}
    async with ctx.db.read() as session:
        queued = await outbox.queued_keys(session, list(keys.values()))
        run.already_queued += len(queued)
        subjects = await load_subjects(session, REPORT_ACTOR, [i for i in ids if keys[i] not in queued])
        wanted: list[ReportSubject] = []
        for subject in subjects:
            if sends_monthly_report(subject.view):
                wanted.append(subject)
            else:
                run.skipped[NO_REPORT] += 1
        if not wanted:
            return
        correspondents = await access.correspondents_in(session, [s.customer.id for s in wanted])
        reports = await build_reports(session, ctx, wanted, month)

    messages: list[outbox.Message] = []
    for subject in wanted:
        report = reports[subject.contract.id]
        if not report.complete:
            run.skipped[NOT_OVER] += 1
            continue
        recipient, extra = _addressee(subject, correspondents[subject.customer.id])
        if recipient.email is None:
            run.skipped[NO_ADDRESS] += 1
            continue
        rendered = render_report_email(
            report, recipient_name=recipient.name, public_url=ctx.settings.link_base,
            on_behalf=recipient.kind == "partner",
        )
        messages.append(
            outbox.Message(
                KIND, subject.customer.id, keys[subject.contract.id], rendered.subject, rendered.text, recipient,
                html_body=rendered.html, extra_emails=extra,
            )
        )
    if not messages:
        return
    if dry_run is not None:
        for message in messages:
            _write(ctx, dry_run, message, month)
        run.written += len(messages)
        return
    async with ctx.db.write() as session:
        queued_ids = await outbox.queue_all(session, ctx, messages)
        await webhooks.emit_all(session, ctx, await _report_events(session, queued_ids, wanted, month))
    added = len(queued_ids)
    run.queued += added
    run.already_queued += len(messages) - added  # another worker queued them meanwhile


async def _report_events(
    session: AsyncSession, queued_ids: list[uuid.UUID], subjects: list[ReportSubject], month: date
) -> list[webhooks.Event]:
    """A report.queued event for each report this run queued (not those another worker queued first)."""
    if not queued_ids:
        return []
    by_key = {report_key(s.contract.id, month): s for s in subjects}
    events = []
    for key, recipient_kind in await session.execute(
        select(OutboxMessage.dedupe_key, OutboxMessage.recipient_kind).where(OutboxMessage.id.in_(queued_ids))
    ):
        subject = by_key[key]
        events.append(
            webhooks.Event(
                "report.queued", subject.customer.id,
                {"report": {
                    "contract_id": subject.contract.id, "contract_reference": subject.contract.reference,
                    "month": f"{month:%Y-%m}", "csv_path": csv_path(subject.contract.id, month),
                    "sent_to": recipient_kind,
                }},
            )
        )
    return events


def _addressee(subject: ReportSubject, found: access.Correspondent) -> tuple[outbox.Recipient, tuple[str, ...]]:
    """The managing partner (never the customer, nor its report contacts); else the customer's report
    contacts, the first as the recipient and the rest beside it; else the customer's own address."""
    if found.kind == "partner":
        return outbox.Recipient("partner", found.name, found.email), ()
    customer = subject.customer
    contacts = list(customer.report_contacts or [])
    if contacts:
        return outbox.Recipient("customer", customer.name, contacts[0]), tuple(contacts[1:])
    return outbox.Recipient("customer", customer.name, customer.email), ()


def _write(ctx: AppContext, folder: Path, message: outbox.Message, month: date) -> Path:
    """A dry run's message as the sender would build it, in `<folder>/<key>.eml`."""
    mail_from = ctx.settings.mail_from
    outgoing = build_outgoing(
        mail_from=mail_from,
        message_id=message_id_for(message.dedupe_key, mail_from),
        kind=message.kind,
        created_at=ctx.now(),
        recipient_name=message.recipient.name,
        recipient_email=message.recipient.email,
        extra_emails=message.extra_emails,
        subject=message.subject,
        body=message.body,
        html_body=message.html_body,
    )
    path = folder / f"{message.dedupe_key.replace(':', '_')}.eml"
    path.write_bytes(outgoing.message.as_bytes())
    return path


async def run_monthly_reports_job(ctx: AppContext) -> MonthlyRun | None:
    """The worker's job: from ENTITLE_REPORT_DAY of each month (UTC) on, queue the previous month's reports.
    Running every hour after that day is cheap (each batch first reads what is queued already) and lets a
    worker that was down on the day catch up; None before the day."""
    today = ctx.now().date()
    if today.day < ctx.settings.report_day:
        return None
    return await queue_monthly_reports(ctx, previous_month(today))
