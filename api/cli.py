"""The `entitle` command line."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from api.config import PROJECT_ROOT, Settings, get_settings
from api.db import Database
from api.jobs.worker import JOBS
from api.programs.loader import ProgramFileError, read_program_file
from api.services.context import Actor, AppContext
from api.services.errors import DomainError

__all__ = ["main"]

CLI_ACTOR = Actor.system("cli")


def _context(settings: Settings) -> AppContext:
    return AppContext(db=Database(settings.database_url, echo=settings.sql_echo), settings=settings)


async def _with_context(settings: Settings, work):  # type: ignore[no-untyped-def]
    ctx = _context(settings)
    try:
        return await work(ctx)
    finally:
        await ctx.db.dispose()


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from api.migrate import upgrade

    upgrade(settings.database_url)
    print(f"database at head: {settings.database_url}")
    return 0


def cmd_load_program(args: argparse.Namespace, settings: Settings) -> int:
    from api.services.inputs import settings_limits
    from api.services.programs import load_programs

    parsed, problems = [], []
    for path in args.files:
        try:
            parsed.append(read_program_file(path, limits=settings_limits(settings)))
        except ProgramFileError as exc:
            problems.extend(exc.issues)
    if problems:
        for issue in problems:
            print(f"error: {issue}", file=sys.stderr)
        print("nothing was loaded", file=sys.stderr)
        return 2
    outcomes = asyncio.run(_with_context(settings, lambda ctx: load_programs(ctx, CLI_ACTOR, parsed)))
    for outcome in outcomes:
        print(f"{outcome.code}: {outcome.status}")
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from api.services.demo import load_demo

    report = asyncio.run(_with_context(settings, lambda ctx: load_demo(ctx, settings.programs_dir)))
    print("programs: " + ", ".join(report.programs))
    print(
        f"created {report.customers_created} customer(s), {report.partners_created} partner(s), "
        f"{report.contracts_created} contract(s), {report.users_created} user(s), {report.bookings} booking(s); "
        f"{len(report.contract_references)} demo contracts in all"
    )
    print("demo logins (local use only) at http://127.0.0.1:8000/login:")
    for email, password, who in report.logins:
        print(f"  {email:34} {password}  {who}")
    return 0


def serve_options(settings: Settings, *, workers: int | None = None) -> dict:
    """How `entitle serve` runs uvicorn: WEB_CONCURRENCY worker processes, each building the application
    from the environment (`api.app:create_app`); a stop lets in-flight requests finish for
    ENTITLE_SHUTDOWN_TIMEOUT seconds before the application shuts down (closing the database); JSON log lines
    with the request id."""
    from api.observability import logging_config

    return {
        "workers": workers or settings.web_concurrency,
        "timeout_graceful_shutdown": settings.shutdown_timeout_seconds,
        # Forwarded headers are believed only from ENTITLE_TRUSTED_PROXIES, by the application itself
        # (api/app.py), not from uvicorn's default of trusting 127.0.0.1.
        "proxy_headers": False,
        "log_config": logging_config(),
        "server_header": False,
    }


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    if args.workers is not None and not 1 <= args.workers <= 64:
        print(f"error: --workers must be 1 to 64, not {args.workers}", file=sys.stderr)
        return 2
    # Without ENTITLE_PUBLIC_URL, links made outside a request (e-mails) point where this server listens;
    # the worker processes read it from the environment like every other setting.
    host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(args.host, f"[{args.host}]" if ":" in args.host else args.host)
    os.environ["ENTITLE_SERVED_URL"] = f"http://{host}:{args.port}"
    uvicorn.run("api.app:create_app", factory=True, host=args.host, port=args.port,
                **serve_options(settings, workers=args.workers))
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from api.jobs.worker import run_worker
    from api.observability import configure_logging

    configure_logging()
    asyncio.run(_with_context(settings, lambda ctx: run_worker(ctx, once=args.once, only=args.job)))
    return 0


def cmd_outbox(args: argparse.Namespace, settings: Settings) -> int:
    import uuid

    from api.models import OutboxStatus
    from api.services import deliveries

    if args.retry is not None:
        try:
            message_id = uuid.UUID(args.retry)
        except ValueError:
            raise DomainError(f"{args.retry!r} is not an outbox message id") from None
        message = asyncio.run(_with_context(settings, lambda ctx: deliveries.retry_delivery(ctx, CLI_ACTOR, message_id)))
        print(f"queued again: {message.id} {message.kind} to {message.recipient_email} ({message.message_id})")
        return 0
    status = None if args.status is None else OutboxStatus(args.status)
    page = asyncio.run(_with_context(settings, lambda ctx: deliveries.list_deliveries(
        ctx, CLI_ACTOR, first=args.first, status=status, kind=args.kind)))
    for m in page.deliveries:
        when = m.sent_at or m.failed_at or m.next_attempt_at
        to = ", ".join(a for a in (m.recipient_email, *(m.extra_emails or [])) if a) or "(no address)"
        print(f"{m.id}  {m.status.value:7}  {when:%Y-%m-%d %H:%M}  {m.attempts} attempt(s)  {m.kind:20}  {to}  {m.subject}")
        if m.last_error and m.status != OutboxStatus.SENT:
            print(f"    last error: {m.last_error}")
    print(f"{len(page.deliveries)} message(s){', more follow' if page.has_next_page else ''}")
    return 0


def cmd_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    from api.jobs.reconcile import reconcile_ledger

    mismatches = asyncio.run(_with_context(settings, reconcile_ledger))
    for m in mismatches:
        print(f"mismatch: contract {m.contract_id} bucket {m.bucket_code} period {m.period_start} {m.column}: "
              f"balance {m.balance}, ledger {m.ledger}")
    print(f"{len(mismatches)} mismatch(es)")
    return 1 if mismatches else 0


async def _party_id(ctx: AppContext, model: type, code: str | None):  # type: ignore[no-untyped-def]
    if code is None:
        return None
    from sqlalchemy import select

    async with ctx.db.read() as session:
        found = await session.scalar(select(model.id).where(model.code == code))
    if found is None:
        raise DomainError(f"no {model.__tablename__[:-1]} with code {code!r}")
    return found


def cmd_user_create(args: argparse.Namespace, settings: Settings) -> int:
    import secrets

    from api.models import Customer, Partner, StaffRole, UserKind
    from api.services import identity

    password = args.password or os.environ.get("ENTITLE_NEW_USER_PASSWORD")
    generated = password is None
    if generated:
        password = secrets.token_urlsafe(12)

    async def work(ctx: AppContext):  # type: ignore[no-untyped-def]
        return await identity.create_user(
            ctx,
            CLI_ACTOR,
            identity.NewUser(
                email=args.email,
                name=args.name,
                password=password,
                kind=UserKind(args.kind),
                staff_role=None if args.role is None else StaffRole(args.role),
                customer_id=await _party_id(ctx, Customer, args.customer),
                partner_id=await _party_id(ctx, Partner, args.partner),
            ),
        )

    user = asyncio.run(_with_context(settings, work))
    print(f"created {user.kind.value} user {user.email} ({user.id})")
    if generated:
        print(f"password (shown once): {password}")
    return 0


def cmd_token_create(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import timedelta

    from api.models import Customer, Partner, TokenAccess, TokenScope
    from api.services import identity

    async def work(ctx: AppContext):  # type: ignore[no-untyped-def]
        expires = None if args.expires_days is None else ctx.now() + timedelta(days=args.expires_days)
        return await identity.create_token(
            ctx,
            CLI_ACTOR,
            identity.NewToken(
                name=args.name,
                scope=TokenScope(args.scope),
                access=TokenAccess(args.access),
                customer_id=await _party_id(ctx, Customer, args.customer),
                partner_id=await _party_id(ctx, Partner, args.partner),
                expires_at=expires,
            ),
        )

    token, secret = asyncio.run(_with_context(settings, work))
    print(f"created {token.scope.value} {token.access.value} token {token.name!r} ({token.id})")
    print(f"token (shown once; send as 'Authorization: Bearer <token>'): {secret}")
    return 0


def cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    import uuid

    from api.services import identity

    try:
        token_id = uuid.UUID(args.id)
    except ValueError:
        raise DomainError(f"{args.id!r} is not a token id") from None
    token = asyncio.run(_with_context(settings, lambda ctx: identity.revoke_token(ctx, CLI_ACTOR, token_id)))
    print(f"revoked token {token.name!r} ({token.id}) at {token.revoked_at.isoformat()}")
    return 0


def cmd_export_schema(args: argparse.Namespace, settings: Settings) -> int:
    from api.graphql.schema import build_schema

    text = build_schema(settings).as_str() + "\n"
    output = Path(args.output)
    if args.check:
        if not output.exists() or output.read_text() != text:
            print(f"{output} is stale: run `entitle export-schema`", file=sys.stderr)
            return 1
        print(f"{output} is up to date")
        return 0
    output.write_text(text)
    print(f"wrote {output}")
    return 0


def _month_arg(text: str):  # type: ignore[no-untyped-def]
    from api.domain.reports import parse_month

    try:
        return parse_month(text)
    except ValueError as exc:
        raise DomainError(str(exc), field="month") from None


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy import select

    from api.models import Contract
    from api.services import reports

    month = _month_arg(args.month)

    async def work(ctx: AppContext):  # type: ignore[no-untyped-def]
        async with ctx.db.read() as session:
            contract_id = await session.scalar(select(Contract.id).where(Contract.reference == args.contract))
        if contract_id is None:
            raise DomainError(f"no contract with reference {args.contract!r}")
        return await reports.consumption_report(ctx, CLI_ACTOR, contract_id, month)

    report = asyncio.run(_with_context(settings, work))
    if args.format == "csv":
        sys.stdout.write(reports.report_csv(report))
    else:
        sys.stdout.write(reports.render_report_text(report, public_url=settings.link_base))
    return 0


def cmd_send_monthly_reports(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from api.jobs.monthly_reports import queue_monthly_reports

    month = _month_arg(args.month)
    dry_run = None if args.dry_run is None else Path(args.dry_run)
    console = Console(stderr=True)
    with Progress(
        TextColumn(f"reports for {month:%Y-%m}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    ) as bar:
        task = bar.add_task("contracts", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        run = asyncio.run(_with_context(settings, lambda ctx: queue_monthly_reports(ctx, month, dry_run=dry_run, progress=progress)))
    print(f"{run.contracts} contract(s) in force in {month:%Y-%m}")
    if dry_run is not None:
        print(f"written (dry run, nothing queued): {run.written} message(s) in {dry_run}")
    else:
        print(f"queued: {run.queued}")
    print(f"already queued: {run.already_queued}")
    print(f"skipped: {sum(run.skipped.values())}")
    for reason, count in sorted(run.skipped.items()):
        print(f"  {count}: {reason}")
    return 0


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from api.generate import GENERATED_PASSWORD, generate

    if args.customers < 1 or not 1 <= args.years <= 10:
        raise DomainError("--customers must be at least 1 and --years 1 to 10")
    clock = None
    if args.now is not None:
        from datetime import datetime

        from api.services.context import FixedClock

        try:
            now = datetime.fromisoformat(args.now)
        except ValueError:
            raise DomainError(f"--now {args.now!r} is not an ISO 8601 instant such as 2026-06-01T12:00:00+00:00") from None
        if now.utcoffset() is None:
            raise DomainError("--now must give its time zone, e.g. 2026-06-01T12:00:00+00:00")
        clock = FixedClock(now)
    console = Console(stderr=True)
    with Progress(
        TextColumn(f"generating {args.customers:,} customers"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), console=console, transient=False,
    ) as bar:
        task = bar.add_task("customers", total=args.customers)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        async def work(ctx: AppContext):  # type: ignore[no-untyped-def]
            if clock is not None:
                ctx.clock = clock
            return await generate(ctx, customers=args.customers, seed=args.seed, years=args.years, progress=progress)

        report = asyncio.run(_with_context(settings, work))
    print(f"generated {report.customers:,} customers on {report.database} in {report.seconds:,.1f} s "
          f"(again: --seed {report.seed} --years {report.years} --now {report.now.isoformat()})")
    for table, count in report.rows.items():
        print(f"  {table:22} {count:>12,} rows {report.write_seconds.get(table, 0):8.1f} s writing")
    print(f"  {'total':22} {report.total:>12,} rows {sum(report.write_seconds.values()):8.1f} s writing "
          f"({report.total / max(report.seconds, 0.001):,.0f} rows/s overall, {report.workers} worker(s))")
    print(f"indexes and constraints rebuilt and checked, statistics refreshed: {report.finish_seconds:,.1f} s")
    print(f"every generated user logs in with the password {GENERATED_PASSWORD!r}")
    return 0


def cmd_customer_report_contacts(args: argparse.Namespace, settings: Settings) -> int:
    from api.models import Customer
    from api.services import parties

    async def work(ctx: AppContext):  # type: ignore[no-untyped-def]
        customer_id = await _party_id(ctx, Customer, args.code)
        if args.set is not None:
            emails = [] if args.set.strip() == "" else args.set.split(",")
            return await parties.set_report_contacts(ctx, CLI_ACTOR, customer_id, emails)
        return (await parties.get_customers_by_ids(ctx, CLI_ACTOR, [customer_id]))[customer_id]

    customer = asyncio.run(_with_context(settings, work))
    contacts = customer.report_contacts or []
    print(f"report contacts of {customer.code}: {', '.join(contacts) if contacts else '(none: reports go to ' + (customer.email or 'no address') + ')'}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="entitle", description="Entitle: premium-support contracts and entitlements.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("migrate", help="upgrade the database to the latest schema").set_defaults(func=cmd_migrate)
    load = sub.add_parser("load-program", help="load or update program files (all or nothing)")
    load.add_argument("files", nargs="+", metavar="FILE")
    load.set_defaults(func=cmd_load_program)
    sub.add_parser("demo", help="load the shipped programs and demo data (idempotent)").set_defaults(func=cmd_demo)
    serve = sub.add_parser("serve", help="serve the portal and /graphql")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, metavar="N", help="worker processes (default: WEB_CONCURRENCY, else 1)")
    serve.set_defaults(func=cmd_serve)
    worker = sub.add_parser("worker", help="run the background jobs")
    worker.add_argument("--once", action="store_true", help="run every job once and exit")
    worker.add_argument("--job", choices=[job.name for job in JOBS], help="run only this job")
    worker.set_defaults(func=cmd_worker)
    sub.add_parser("reconcile", help="check every balance against its ledger").set_defaults(func=cmd_reconcile)
    outbox = sub.add_parser("outbox", help="list e-mail deliveries, newest first, or retry a failed one")
    outbox.add_argument("--status", choices=["queued", "sending", "sent", "failed"])
    outbox.add_argument("--kind", help="only messages of this kind, e.g. ticket_filed")
    outbox.add_argument("--first", type=int, default=50, help="how many (1-200)")
    outbox.add_argument("--retry", metavar="ID", help="put this failed message back in the queue")
    outbox.set_defaults(func=cmd_outbox)
    user = sub.add_parser("user", help="manage users").add_subparsers(dest="user_command", required=True)
    create = user.add_parser("create", help="create a user; without --password one is generated and printed once")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--kind", required=True, choices=["customer", "partner", "staff"])
    create.add_argument("--role", choices=["support_engineer", "client_manager", "admin"], help="staff only")
    create.add_argument("--customer", metavar="CODE", help="customer users: the customer's code")
    create.add_argument("--partner", metavar="CODE", help="partner users: the partner's code")
    create.add_argument("--password", help="or set ENTITLE_NEW_USER_PASSWORD")
    create.set_defaults(func=cmd_user_create)
    token = sub.add_parser("token", help="manage API tokens").add_subparsers(dest="token_command", required=True)
    tcreate = token.add_parser("create", help="create an API token and print it once")
    tcreate.add_argument("--name", required=True)
    tcreate.add_argument("--scope", required=True, choices=["customer", "partner", "provider"])
    tcreate.add_argument("--access", default="read", choices=["read", "read_write"])
    tcreate.add_argument("--customer", metavar="CODE")
    tcreate.add_argument("--partner", metavar="CODE")
    tcreate.add_argument("--expires-days", type=int)
    tcreate.set_defaults(func=cmd_token_create)
    trevoke = token.add_parser("revoke", help="revoke an API token by id")
    trevoke.add_argument("id")
    trevoke.set_defaults(func=cmd_token_revoke)
    report = sub.add_parser("report", help="print a contract's consumption report for a month")
    report.add_argument("--contract", required=True, metavar="REF", help="the contract's reference")
    report.add_argument("--month", required=True, metavar="YYYY-MM")
    report.add_argument("--format", choices=["text", "csv"], default="text")
    report.set_defaults(func=cmd_report)
    send = sub.add_parser("send-monthly-reports", help="queue a month's reports by e-mail (once per contract)")
    send.add_argument("--month", required=True, metavar="YYYY-MM")
    send.add_argument("--dry-run", metavar="DIR", help="write the rendered messages into DIR as .eml; queue nothing")
    send.set_defaults(func=cmd_send_monthly_reports)
    gen = sub.add_parser("generate", help="fill a migrated database with a large generated data set (benchmarks)")
    gen.add_argument("--customers", type=int, required=True, metavar="N", help="how many customers (10000: ~1M tickets)")
    gen.add_argument("--seed", type=int, default=1, help="the same seed gives the same data (default 1)")
    gen.add_argument("--years", type=int, default=3, help="years of history up to now (default 3)")
    gen.add_argument("--now", metavar="INSTANT", help="the history ends here (ISO 8601 with offset; default: now)")
    gen.set_defaults(func=cmd_generate)
    customer = sub.add_parser("customer", help="manage customers").add_subparsers(dest="customer_command", required=True)
    contacts = customer.add_parser("report-contacts", help="show or set who receives a customer's monthly reports")
    contacts.add_argument("code", metavar="CODE", help="the customer's code")
    contacts.add_argument("--set", metavar="EMAILS", help="comma-separated e-mail addresses (at most 20); '' clears them")
    contacts.set_defaults(func=cmd_customer_report_contacts)
    export = sub.add_parser("export-schema", help="write the GraphQL schema (SDL)")
    export.add_argument("--output", default=str(PROJECT_ROOT / "schema.graphql"))
    export.add_argument("--check", action="store_true", help="fail if the file differs instead of writing it")
    export.set_defaults(func=cmd_export_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = get_settings()
    except ValueError as exc:  # a setting out of range: say which, without a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return args.func(args, settings)
    except DomainError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
