"""Shared fixtures: one fresh database per test run (SQLite file, or a new PostgreSQL database when
ENTITLE_TEST_DATABASE_URL is set), dropped at the end, so two runs never collide."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from api.config import PROJECT_ROOT, Settings
from api.db import Database
from api.domain.periods import add_months
from api.migrate import upgrade
from api.programs.loader import read_program_file
from api.auth import CSRF_HEADER, SESSION_COOKIE
from api.models import StaffRole, UserKind
from api.services import contracts, identity, parties, programs
from api.services.context import Actor, AppContext, FixedClock

TEST_DATABASE_ENV = "ENTITLE_TEST_DATABASE_URL"
ADMIN = Actor.system("tests")
# The tests' "now": a Tuesday in March 2026, noon UTC.
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
_counter = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}-{uuid.uuid4().hex[:6]}"


class DatabaseFactory:
    """Creates throw-away databases and drops every one of them at the end of the run."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.server_url = os.environ.get(TEST_DATABASE_ENV)
        self.created: list[str] = []

    @property
    def dialect(self) -> str:
        return "postgresql" if self.server_url else "sqlite"

    def new(self) -> str:
        if not self.server_url:
            return f"sqlite:///{self.tmp / (uuid.uuid4().hex + '.db')}"
        name = f"entitle_test_{uuid.uuid4().hex[:16]}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return make_url(self.server_url).set(database=name).render_as_string(hide_password=False)

    def _admin(self) -> psycopg.Connection:
        url = make_url(self.server_url)
        return psycopg.connect(
            host=url.host, port=url.port, user=url.username, password=url.password,
            dbname=url.database, autocommit=True,
        )

    def drop_all(self) -> None:
        if not self.created:
            return
        with self._admin() as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(tmp_path_factory.mktemp("db"))
    yield factory
    factory.drop_all()


@pytest.fixture(scope="session")
def database_url(database_factory: DatabaseFactory) -> str:
    url = database_factory.new()
    upgrade(url)
    return url


@pytest.fixture(scope="session")
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    yield db
    await db.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # A worker run in a test writes its .eml files here, never into the repository's var/outbox.
    return Settings(database_url=database_url, outbox_dir=tmp_path / "outbox")


@pytest.fixture
def ctx(database: Database, settings: Settings, clock: FixedClock) -> AppContext:
    return AppContext(db=database, settings=settings, clock=clock)


@pytest.fixture(scope="session")
async def shipped_programs(database: Database, database_url: str) -> list[str]:
    """The five shipped programs, loaded once per run."""
    ctx = AppContext(db=database, settings=Settings(database_url=database_url), clock=FixedClock(NOW))
    parsed = [read_program_file(p) for p in sorted((PROJECT_ROOT / "programs").glob("*.toml"))]
    outcomes = await programs.load_programs(ctx, ADMIN, parsed)
    return [o.code for o in outcomes]


@pytest.fixture
def make_customer(ctx: AppContext):  # type: ignore[no-untyped-def]
    async def make(**fields: Any):  # type: ignore[no-untyped-def]
        code = fields.pop("code", unique("customer"))
        return await parties.create_customer(ctx, ADMIN, parties.NewCustomer(code=code, name=fields.pop("name", code), **fields))

    return make


@pytest.fixture
def make_contract(ctx: AppContext, shipped_programs: list[str], make_customer):  # type: ignore[no-untyped-def]
    """A contract on a shipped plan; defaults: Assure Small, effective 2026-02-15 for one year."""

    async def make(
        program: str = "advisory-assure",
        plan: str = "small",
        effective: date = date(2026, 2, 15),
        end: date | None = None,
        **fields: Any,
    ):  # type: ignore[no-untyped-def]
        customer = fields.pop("customer", None) or await make_customer()
        return await contracts.create_contract(
            ctx,
            ADMIN,
            contracts.NewContract(
                reference=fields.pop("reference", unique("ORD")),
                customer_id=customer.id,
                program_code=program,
                plan_code=plan,
                effective_date=effective,
                end_date=end or add_months(effective, 12) - timedelta(days=1),
                monthly_fee=fields.pop("monthly_fee", Decimal("1000.00")),
                currency=fields.pop("currency", "EUR"),
                **fields,
            ),
        )

    return make


ADMIN_EMAIL = "admin@tests.example"
ADMIN_PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
async def admin_login(database: Database, database_url: str) -> identity.Login:
    """One staff admin and one portal session for the whole run (sessions last 12 h from NOW)."""
    ctx = AppContext(db=database, settings=Settings(database_url=database_url), clock=FixedClock(NOW))
    await identity.create_user(
        ctx,
        ADMIN,
        identity.NewUser(
            email=ADMIN_EMAIL, name="Test Admin", password=ADMIN_PASSWORD, kind=UserKind.STAFF,
            staff_role=StaffRole.ADMIN,
        ),
    )
    return await identity.log_in(ctx, ADMIN_EMAIL, ADMIN_PASSWORD)


@pytest.fixture
async def anonymous_client(
    settings: Settings, database: Database, clock: FixedClock
) -> AsyncIterator[httpx.AsyncClient]:
    from api.app import create_app

    app = create_app(settings, database=database, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def client(anonymous_client: httpx.AsyncClient, admin_login: identity.Login) -> httpx.AsyncClient:
    """A client logged in as a staff admin: session cookie plus its CSRF header."""
    anonymous_client.cookies.set(SESSION_COOKIE, admin_login.session_secret)
    anonymous_client.headers[CSRF_HEADER] = admin_login.csrf_token
    return anonymous_client


@pytest.fixture
def gql(client: httpx.AsyncClient):  # type: ignore[no-untyped-def]
    """Run a GraphQL operation over HTTP; fails the test on transport-level GraphQL errors."""

    async def run(query: str, variables: dict[str, Any] | None = None, *, allow_errors: bool = False) -> dict[str, Any]:
        response = await client.post("/graphql", json={"query": query, "variables": variables or {}})
        assert response.status_code == 200, response.text
        body = response.json()
        if not allow_errors:
            assert "errors" not in body, body["errors"]
            return body["data"]
        return body

    return run
