"""The `entitle` command line, run in-process against fresh databases.

The commands call asyncio.run themselves, so these tests are plain (sync) functions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, pool, select

from api.cli import main
from api.config import PROJECT_ROOT
from api.db import sync_url
from api.models import Booking, BookingStatus, Contract, EntitlementBalance, LedgerEntry, PlanRecord, ProgramRecord
from api.programs.loader import read_program_file
from api.services.demo import DEMO_BOOKINGS, DEMO_PAST_BOOKINGS, USERS
from tests.factories import small_program

PROGRAMS = sorted((PROJECT_ROOT / "programs").glob("*.toml"))

GOOD = small_program("cli-test", name="CLI Test Support")


@pytest.fixture
def fresh_url(database_factory, monkeypatch) -> str:  # type: ignore[no-untyped-def]
    url = database_factory.new()
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("ENTITLE_PROGRAMS_DIR", raising=False)
    monkeypatch.delenv("ENTITLE_SQL_ECHO", raising=False)
    return url


@pytest.fixture
def migrated(fresh_url, capsys) -> str:  # type: ignore[no-untyped-def]
    assert main(["migrate"]) == 0
    capsys.readouterr()
    return fresh_url


@pytest.fixture
def engine(migrated: str) -> Iterator[Engine]:
    engine = create_engine(sync_url(migrated), poolclass=pool.NullPool)
    yield engine
    engine.dispose()


def count(engine: Engine, model) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(model))


def ledger_rows(engine: Engine) -> tuple[list[tuple], list[tuple]]:
    with engine.connect() as conn:
        entries = conn.execute(
            select(LedgerEntry.id, LedgerEntry.contract_id, LedgerEntry.quantity).order_by(LedgerEntry.id)
        ).all()
        balances = conn.execute(
            select(EntitlementBalance.contract_id, EntitlementBalance.bucket_code, EntitlementBalance.period_start,
                   EntitlementBalance.consumed).order_by(EntitlementBalance.contract_id, EntitlementBalance.bucket_code)
        ).all()
    return [tuple(r) for r in entries], [tuple(r) for r in balances]


def test_migrate(fresh_url, capsys):
    assert main(["migrate"]) == 0
    assert "database at head" in capsys.readouterr().out
    assert main(["migrate"]) == 0  # again: nothing to do


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_program_refuses_a_bad_file(engine, tmp_path, capsys):
    bad = write(tmp_path, "typo.toml", GOOD.replace('unit = "activities"', 'unti = "activities"'))
    assert main(["load-program", str(bad)]) != 0
    err = capsys.readouterr().err
    assert f"{bad}: plans.basic.buckets.support.unti: is not a known key here" in err
    assert f"{bad}: plans.basic.buckets.support.unit: is required" in err
    assert "nothing was loaded" in err
    assert count(engine, ProgramRecord) == 0


def test_load_program_loads_nothing_when_one_file_is_bad(engine, tmp_path, capsys):
    good = write(tmp_path, "good.toml", GOOD)
    bad = write(tmp_path, "bad.toml", GOOD.replace('code = "cli-test"', 'code = "cli-bad"\nprovder = "x"'))
    assert main(["load-program", str(good), str(bad), *map(str, PROGRAMS)]) != 0
    err = capsys.readouterr().err
    assert f"{bad}: provder: is not a known key here" in err
    assert str(good) not in err
    assert "nothing was loaded" in err
    assert count(engine, ProgramRecord) == 0


def test_load_program_refuses_an_unreadable_file(engine, tmp_path, capsys):
    missing = tmp_path / "missing.toml"
    broken = write(tmp_path, "broken.toml", "code = ")
    assert main(["load-program", str(missing), str(broken)]) != 0
    err = capsys.readouterr().err
    assert f"{missing}: (top level): cannot be read" in err
    assert f"{broken}: (top level): is not valid TOML" in err
    assert count(engine, ProgramRecord) == 0


def test_load_program_refuses_deep_nesting_and_its_limits_are_configured(engine, tmp_path, capsys, monkeypatch):
    deep = write(tmp_path, "deep.toml", GOOD + "x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert main(["load-program", str(deep)]) == 2
    err = capsys.readouterr().err
    assert f"{deep}: (top level): the program file nests 21 levels deep on line" in err and "at most 20" in err
    assert count(engine, ProgramRecord) == 0

    long = write(tmp_path, "long.toml", GOOD + "# " + "x" * 1_000 + "\n")
    assert main(["load-program", str(long)]) == 0  # within the default limit
    capsys.readouterr()
    monkeypatch.setenv("ENTITLE_PROGRAM_MAX_SIZE", "1000")
    write(tmp_path, "long.toml", GOOD.replace("CLI Test Support", "CLI Test Support, longer") + "# " + "x" * 1_000 + "\n")
    assert main(["load-program", str(long)]) == 2
    assert f"{long}: (top level): must be at most 1000 characters" in capsys.readouterr().err


def test_load_program_loads_good_files(engine, tmp_path, capsys):
    good = write(tmp_path, "good.toml", GOOD)
    assert main(["load-program", str(good), *map(str, PROGRAMS)]) == 0
    out = capsys.readouterr().out.splitlines()
    codes = ["cli-test", *(read_program_file(p).program.code for p in PROGRAMS)]
    assert out == [f"{code}: created" for code in codes]
    assert count(engine, ProgramRecord) == len(codes)

    assert main(["load-program", str(good)]) == 0
    assert capsys.readouterr().out.splitlines() == ["cli-test: unchanged"]
    write(tmp_path, "good.toml", GOOD.replace("CLI Test Support", "CLI Test Support, renamed"))
    assert main(["load-program", str(good)]) == 0
    assert capsys.readouterr().out.splitlines() == ["cli-test: updated"]


def test_load_program_reports_a_refused_change_to_a_plan_in_use(engine, tmp_path, capsys):
    assert main(["demo"]) == 0
    capsys.readouterr()
    before = ledger_rows(engine), count(engine, ProgramRecord)
    changed = write(
        tmp_path, "advisory-assure.toml",
        (PROJECT_ROOT / "programs" / "advisory-assure.toml").read_text().replace("allowance = 5\nallowance_per_year = 20", "allowance = 6\nallowance_per_year = 24"),
    )
    assert main(["load-program", str(changed)]) == 2
    err = capsys.readouterr().err
    assert "plans.small.buckets.activities.allowance" in err and "cannot change" in err
    assert (ledger_rows(engine), count(engine, ProgramRecord)) == before


def test_demo_creates_a_contract_for_every_plan_and_is_idempotent(engine, capsys):
    plans = {
        (parsed.program.code, plan) for parsed in map(read_program_file, PROGRAMS) for plan in parsed.program.plans
    }
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert (
        f"{len(plans)} contract(s), {len(USERS)} user(s), {len(DEMO_BOOKINGS) + len(DEMO_PAST_BOOKINGS)} booking(s); "
        f"{len(plans)} demo contracts in all"
    ) in out
    with engine.connect() as conn:
        contracted = set(
            conn.execute(
                select(ProgramRecord.code, PlanRecord.code)
                .join(PlanRecord, PlanRecord.program_id == ProgramRecord.id)
                .join(Contract, Contract.plan_id == PlanRecord.id)
            ).all()
        )
    assert contracted == plans
    assert count(engine, Contract) == len(plans)
    entries, balances = ledger = ledger_rows(engine)
    assert entries and balances

    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "created 0 customer(s), 0 partner(s), 0 contract(s), 0 user(s), 0 booking(s)" in out
    assert all(f"{code} (unchanged)" in out for code, _ in plans)
    assert count(engine, Contract) == len(plans)
    assert ledger_rows(engine) == ledger
    with engine.connect() as conn:
        booked = conn.execute(
            select(Contract.reference, Booking.activity_code, Booking.status).join(Contract, Contract.id == Booking.contract_id)
        ).all()
    assert sorted(booked) == sorted(
        [
            (reference, activity, BookingStatus.SCHEDULED if scheduled else BookingStatus.REQUESTED)
            for reference, activity, scheduled in DEMO_BOOKINGS
        ]
        + DEMO_PAST_BOOKINGS
    )

    assert main(["reconcile"]) == 0
    assert capsys.readouterr().out.strip().endswith("0 mismatch(es)")


def test_reconcile_on_an_empty_database(migrated, capsys):
    assert main(["reconcile"]) == 0
    assert "0 mismatch(es)" in capsys.readouterr().out


def test_reconcile_fails_on_a_mismatch(engine, capsys):
    assert main(["demo"]) == 0
    capsys.readouterr()
    with engine.begin() as conn:
        conn.execute(
            EntitlementBalance.__table__.update()
            .where(EntitlementBalance.consumed > 0)
            .values(consumed=EntitlementBalance.consumed - 1)
        )
    assert main(["reconcile"]) == 1
    out = capsys.readouterr().out
    assert "mismatch: contract" in out
    assert "0 mismatch(es)" not in out


def test_export_schema_check_passes_on_the_committed_schema(capsys):
    assert main(["export-schema", "--check"]) == 0
    assert "is up to date" in capsys.readouterr().out


def test_export_schema_check_fails_on_a_stale_file(tmp_path, capsys):
    stale = write(tmp_path, "schema.graphql", "type Query {\n  hello: String!\n}\n")
    assert main(["export-schema", "--check", "--output", str(stale)]) == 1
    assert f"{stale} is stale" in capsys.readouterr().err
    assert main(["export-schema", "--check", "--output", str(tmp_path / "missing.graphql")]) == 1
    capsys.readouterr()

    assert main(["export-schema", "--output", str(stale)]) == 0
    assert stale.read_text() == (PROJECT_ROOT / "schema.graphql").read_text()
    assert main(["export-schema", "--check", "--output", str(stale)]) == 0


# ---- users and tokens --------------------------------------------------------------------------


def on_database(url: str, work):  # type: ignore[no-untyped-def]
    """Run a service call against the command's database, the way the commands do."""
    import asyncio

    from api.config import Settings
    from api.db import Database
    from api.services.context import AppContext

    async def run():  # type: ignore[no-untyped-def]
        db = Database(url)
        try:
            return await work(AppContext(db=db, settings=Settings(database_url=url)))
        finally:
            await db.dispose()

    return asyncio.run(run())


def audit_rows(engine: Engine) -> list[tuple]:
    from api.models import AuditEntry

    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(AuditEntry.action, AuditEntry.actor_ref, AuditEntry.interface).order_by(AuditEntry.occurred_at)
        ).all()]


def test_user_create_with_a_password(engine, migrated, capsys):
    from api.models import User
    from api.services import identity

    argv = ["user", "create", "--email", "Ada@Provider.Example", "--name", "Ada", "--kind", "staff", "--role", "admin"]
    assert main([*argv, "--password", "a long enough password"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("created staff user ada@provider.example (")
    assert "password" not in out
    login = on_database(migrated, lambda ctx: identity.log_in(ctx, "ada@provider.example", "a long enough password"))
    assert login.user.staff_role.value == "admin"
    with engine.connect() as conn:
        stored = conn.scalar(select(User.password_hash).where(User.email == "ada@provider.example"))
    assert stored.startswith("$argon2") and "a long enough password" not in stored
    assert ("user.create", "system:cli", "cli") in audit_rows(engine)

    # The same e-mail again, in any case: refused, nothing written.
    assert main([*argv[:3], "ADA@provider.example", *argv[4:], "--password", "another long password"]) == 2
    assert "error: a user with e-mail ada@provider.example already exists" in capsys.readouterr().err
    assert count(engine, User) == 1


def test_user_create_without_a_password_prints_a_generated_one_once(engine, migrated, capsys, monkeypatch):
    from api.services import identity

    monkeypatch.delenv("ENTITLE_NEW_USER_PASSWORD", raising=False)
    assert main(["user", "create", "--email", "sam@provider.example", "--name", "Sam", "--kind", "staff",
                 "--role", "support_engineer"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("created staff user sam@provider.example")
    [password_line] = [line for line in lines if line.startswith("password (shown once): ")]
    password = password_line.removeprefix("password (shown once): ")
    assert len(password) >= 12
    login = on_database(migrated, lambda ctx: identity.log_in(ctx, "sam@provider.example", password))
    assert login.user.name == "Sam"

    monkeypatch.setenv("ENTITLE_NEW_USER_PASSWORD", "from the environment")
    assert main(["user", "create", "--email", "env@provider.example", "--name", "Env", "--kind", "staff",
                 "--role", "client_manager"]) == 0
    assert "password" not in capsys.readouterr().out
    on_database(migrated, lambda ctx: identity.log_in(ctx, "env@provider.example", "from the environment"))


def test_user_create_refusals(engine, capsys):
    from api.models import User

    cases = [
        (["--kind", "staff"], "error: a staff user needs staffRole"),
        (["--kind", "staff", "--role", "admin", "--password", "short"], "error: password must be at least 12 characters"),
        (["--kind", "customer", "--customer", "no-such-customer"], "error: no customer with code 'no-such-customer'"),
        (["--kind", "partner", "--partner", "no-such-partner"], "error: no partner with code 'no-such-partner'"),
        (["--kind", "customer"], "error: a customer user needs customerId"),
    ]
    for extra, message in cases:
        assert main(["user", "create", "--email", "x@provider.example", "--name", "X", *extra]) == 2
        assert message in capsys.readouterr().err, extra
    assert count(engine, User) == 0


def test_demo_users_can_log_in_for_a_customer_and_a_partner(engine, migrated, capsys):
    from api.services import identity
    from api.services.demo import DEMO_PASSWORD

    assert main(["demo"]) == 0
    capsys.readouterr()
    assert main(["user", "create", "--email", "second@acme-retail.example", "--name", "Second", "--kind", "customer",
                 "--customer", "acme-retail", "--password", "a long enough password"]) == 0
    assert "created customer user second@acme-retail.example" in capsys.readouterr().out
    nora = on_database(migrated, lambda ctx: identity.log_in(ctx, "nora@northwind.example", DEMO_PASSWORD))
    assert nora.user.kind.value == "partner" and nora.user.partner_id is not None


def test_token_create_prints_a_token_that_authenticates_and_revoke_stops_it(engine, migrated, capsys):
    from api.models import ApiToken
    from api.services import identity
    from api.services.errors import AuthenticationFailed

    assert main(["token", "create", "--name", "reporting", "--scope", "provider", "--access", "read_write",
                 "--expires-days", "30"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("created provider read_write token 'reporting' (")
    token_id = lines[0].rsplit("(", 1)[1].rstrip(")")
    secret = lines[1].removeprefix("token (shown once; send as 'Authorization: Bearer <token>'): ")
    assert secret.startswith("ent_")
    actor = on_database(migrated, lambda ctx: identity.token_actor(ctx, secret))
    assert (actor.kind, actor.roles, actor.read_only, str(actor.token_id)) == ("staff", frozenset({"integrator"}), False, token_id)
    with engine.connect() as conn:
        row = conn.execute(select(ApiToken.secret_hash, ApiToken.expires_at, ApiToken.created_by)).one()
    assert secret.split("_", 2)[2] not in row.secret_hash and row.created_by == "system:cli"
    assert row.expires_at is not None

    assert main(["token", "revoke", token_id]) == 0
    assert capsys.readouterr().out.startswith(f"revoked token 'reporting' ({token_id}) at ")
    with pytest.raises(AuthenticationFailed, match="revoked"):
        on_database(migrated, lambda ctx: identity.token_actor(ctx, secret))
    assert [a for a, _, i in audit_rows(engine) if i == "cli"] == ["token.create", "token.revoke"]

    assert main(["token", "revoke", "not-an-id"]) == 2
    assert "error: 'not-an-id' is not a token id" in capsys.readouterr().err
    missing = "00000000-0000-0000-0000-000000000000"
    assert main(["token", "revoke", missing]) == 2
    assert f"error: API token {missing} does not exist" in capsys.readouterr().err


def test_token_create_for_a_customer_and_its_refusals(engine, migrated, capsys):
    from api.models import ApiToken
    from api.services import identity

    assert main(["demo"]) == 0
    capsys.readouterr()
    assert main(["token", "create", "--name", "acme", "--scope", "customer", "--customer", "acme-retail"]) == 0
    secret = capsys.readouterr().out.splitlines()[1].rsplit(" ", 1)[1]
    actor = on_database(migrated, lambda ctx: identity.token_actor(ctx, secret))
    assert (actor.kind, actor.read_only) == ("customer", True)  # read is the default access

    before = count(engine, ApiToken)
    for extra, message in (
        (["--scope", "customer"], "error: a customer token takes customerId only"),
        (["--scope", "provider", "--customer", "acme-retail"], "error: a provider token takes no customer or partner"),
        (["--scope", "partner", "--partner", "nobody"], "error: no partner with code 'nobody'"),
        (["--scope", "provider", "--expires-days", "0"], "error: the expiry must be in the future"),
    ):
        assert main(["token", "create", "--name", "x", *extra]) == 2
        assert message in capsys.readouterr().err
    assert count(engine, ApiToken) == before


def test_demo_prints_the_logins_and_creates_one_user_of_each_role(engine, migrated, capsys):
    from api.models import User
    from api.services import identity
    from api.services.demo import DEMO_PASSWORD

    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "demo logins (local use only) at http://127.0.0.1:8000/login:" in out
    for email, name, *_ in USERS:
        [line] = [line for line in out.splitlines() if line.strip().startswith(email)]
        assert DEMO_PASSWORD in line and name in line
    with engine.connect() as conn:
        users = conn.execute(select(User.kind, User.staff_role)).all()
    kinds = sorted((kind.value, role.value if role else None) for kind, role in users)
    assert kinds == sorted([
        ("staff", "admin"), ("staff", "client_manager"), ("staff", "support_engineer"),
        ("customer", None), ("customer", None), ("partner", None), ("partner", None),
    ])
    for email, *_ in USERS:
        on_database(migrated, lambda ctx, email=email: identity.log_in(ctx, email, DEMO_PASSWORD))

    # Again: the logins are printed again, no user is created twice.
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "0 user(s)" in out and all(email in out for email, *_ in USERS)
    assert count(engine, User) == len(USERS)
    with engine.connect() as conn:
        managers = set(conn.scalars(select(Contract.client_manager_id)))
        manager = conn.scalar(select(User.id).where(User.email == "client.manager@entitle.example"))
    assert managers == {manager}  # every demo contract has the demo client manager
