"""The `entitle` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from api.config import PROJECT_ROOT, Settings, get_settings
from api.jobs.worker import JOBS
from api.db import Database
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
    from api.services.programs import load_programs

    parsed, problems = [], []
    for path in args.files:
        try:
            parsed.append(read_program_file(path))
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


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.app import create_app

    uvicorn.run(create_app(settings), host=args.host, port=args.port, proxy_headers=True, log_level="info")
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from api.jobs.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_with_context(settings, lambda ctx: run_worker(ctx, once=args.once, only=args.job)))
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
    serve.set_defaults(func=cmd_serve)
    worker = sub.add_parser("worker", help="run the background jobs")
    worker.add_argument("--once", action="store_true", help="run every job once and exit")
    worker.add_argument("--job", choices=[job.name for job in JOBS], help="run only this job")
    worker.set_defaults(func=cmd_worker)
    sub.add_parser("reconcile", help="check every balance against its ledger").set_defaults(func=cmd_reconcile)
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
    export = sub.add_parser("export-schema", help="write the GraphQL schema (SDL)")
    export.add_argument("--output", default=str(PROJECT_ROOT / "schema.graphql"))
    export.add_argument("--check", action="store_true", help="fail if the file differs instead of writing it")
    export.set_defaults(func=cmd_export_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = get_settings()
    try:
        return args.func(args, settings)
    except DomainError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
