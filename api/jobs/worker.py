"""The worker loop: runs each registered job on its interval until stopped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from api.jobs.monthly_reports import run_monthly_reports_job
from api.jobs.reconcile import reconcile_ledger
from api.jobs.reminders import queue_expiry_reminders
from api.jobs.sender import deliver_outbox
from api.jobs.webhooks import deliver_webhooks
from api.observability import new_request_id, request_scope
from api.services.context import AppContext

__all__ = ["JOBS", "Job", "run_worker"]

log = logging.getLogger("entitle.worker")


async def _reconcile(ctx: AppContext) -> None:
    mismatches = await reconcile_ledger(ctx)
    for m in mismatches:
        log.error(
            "%s of contract %s bucket %s period %s is %s but its ledger sums to %s",
            m.column, m.contract_id, m.bucket_code, m.period_start, m.balance, m.ledger,
        )
    log.info("ledger reconciliation: %d mismatch(es)", len(mismatches))


async def _remind(ctx: AppContext) -> None:
    run = await queue_expiry_reminders(ctx)
    log.info(
        "expiry reminders: %d contract(s) in force, %d period(s) expiring soon, %d message(s) queued",
        run.contracts, run.expiring, run.queued,
    )


async def _monthly_reports(ctx: AppContext) -> None:
    run = await run_monthly_reports_job(ctx)
    if run is None:
        log.info("monthly reports: before day %d of the month, nothing to do", ctx.settings.report_day)
        return
    skipped = ", ".join(f"{count} {reason}" for reason, count in run.skipped.items()) or "none"
    log.info(
        "monthly reports for %s: %d contract(s), %d queued, %d already queued, skipped: %s",
        f"{run.month:%Y-%m}", run.contracts, run.queued, run.already_queued, skipped,
    )


async def _deliver(ctx: AppContext) -> None:
    run = await deliver_outbox(ctx)
    log.info(
        "outbox delivery: %d leased, %d sent, %d to retry, %d failed, %d resent after a crash, %d lost to another sender",
        run.leased, run.sent, run.retrying, run.failed, run.resent_after_crash, run.lost,
    )


async def _deliver_webhooks(ctx: AppContext) -> None:
    run = await deliver_webhooks(ctx)
    log.info(
        "webhook delivery: %d leased, %d delivered, %d to retry, %d failed, %d refused by the policy, "
        "%d lost to another sender, %d purged",
        run.leased, run.delivered, run.retrying, run.failed, run.refused, run.lost, run.purged,
    )


@dataclass(frozen=True)
class Job:
    name: str
    every_seconds: int
    run: Callable[[AppContext], Awaitable[None]]
    interval_setting: str | None = None  # a Settings field that overrides every_seconds

    def interval(self, ctx: AppContext) -> float:
        return getattr(ctx.settings, self.interval_setting) if self.interval_setting else self.every_seconds


# Delivery comes last, so a run also sends what the jobs before it queued.
JOBS = [
    Job("reconcile-ledger", 3600, _reconcile),
    Job("expiry-reminders", 3600, _remind),
    Job("monthly-reports", 3600, _monthly_reports),
    Job("deliver-webhooks", 10, _deliver_webhooks, "webhook_interval_seconds"),
    Job("deliver-outbox", 30, _deliver, "mail_interval_seconds"),
]


async def run_worker(
    ctx: AppContext, *, once: bool = False, stop: asyncio.Event | None = None, only: str | None = None
) -> None:
    """Run every job (or only the one named) on its interval until stopped; `once` runs each one time."""
    jobs = [job for job in JOBS if only is None or job.name == only]
    if not jobs:
        raise ValueError(f"no job {only!r}; the jobs are {', '.join(job.name for job in JOBS)}")
    stop = stop or asyncio.Event()
    due = {job.name: 0.0 for job in jobs}
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        for job in jobs:
            if loop.time() >= due[job.name]:
                # Each run's log lines carry an id of their own, as a request's do.
                with request_scope(f"job-{job.name}-{new_request_id()[:12]}"):
                    try:
                        await job.run(ctx)
                    except Exception:  # one failing job must not stop the others
                        log.exception("job %s failed", job.name)
                due[job.name] = loop.time() + job.interval(ctx)
        if once:
            return
        try:
            await asyncio.wait_for(stop.wait(), timeout=min(due.values()) - loop.time())
        except TimeoutError:
            pass
