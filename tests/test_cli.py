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
from api.models import Contract, EntitlementBalance, LedgerEntry, PlanRecord, ProgramRecord
from api.programs.loader import read_program_file
from api.services.demo import USERS

PROGRAMS = sorted((PROJECT_ROOT / "programs").glob("*.toml"))

GOOD = """
code = "cli-test"
name = "CLI Test Support"
provider = "Tests"

[plans.basic]
name = "Basic"

[plans.basic.buckets.support]
name = "Support"
unit = "activities"
allowance = 3
period = "quarter"
anchor = "contract"
"""


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
    assert f"{len(plans)} contract(s), {len(USERS)} user(s); {len(plans)} demo contracts in all" in out
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
    assert "created 0 customer(s), 0 partner(s), 0 contract(s), 0 user(s)" in out
    assert all(f"{code} (unchanged)" in out for code, _ in plans)
    assert count(engine, Contract) == len(plans)
    assert ledger_rows(engine) == ledger

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
