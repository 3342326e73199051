"""One read transaction per request (api.db.SharedReads): reads share it, take turns, see what the request
wrote, survive a failed statement, and fall back to their own once the request has ended."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DBAPIError

from api.db import Database
from api.models import Customer
from api.services import parties
from tests.conftest import ADMIN, unique


def count_begins(db: Database) -> list[object]:
    began: list[object] = []
    event.listen(db.engine.sync_engine, "begin", lambda conn: began.append(conn))
    return began


async def test_every_read_of_a_request_shares_one_transaction(database: Database) -> None:
    began = count_begins(database)
    sessions = []
    async with database.shared_reads() as shared:

        async def one_read(nested: bool) -> None:
            async with database.read() as session:
                await session.execute(select(func.count()).select_from(Customer))
                sessions.append(session)
                if nested:  # a read inside a read of the same task joins it rather than waiting for itself
                    async with database.read() as inner:
                        assert inner is session

        await asyncio.gather(*(one_read(nested=n % 2 == 0) for n in range(6)))
        assert shared.transactions == 1
    assert len({id(s) for s in sessions}) == 1
    assert len(began) == 1
    assert database.engine.pool.checkedout() == 0  # given back when the request ended


async def test_a_read_after_a_write_sees_it(ctx) -> None:  # type: ignore[no-untyped-def]
    db = ctx.db
    async with db.shared_reads() as shared:
        async with db.read() as session:
            before = await session.scalar(select(func.count()).select_from(Customer))
        customer = await parties.create_customer(ctx, ADMIN, parties.NewCustomer(code=unique("shared"), name="Shared"))
        async with db.read() as session:
            assert await session.scalar(select(func.count()).select_from(Customer)) == before + 1
            assert await session.get(Customer, customer.id) is not None
        assert shared.transactions == 2  # the write ended the first: a fresh snapshot after it


async def test_a_failed_statement_ends_the_transaction_and_the_next_read_begins_another(database: Database) -> None:
    async with database.shared_reads() as shared:
        with pytest.raises(DBAPIError):
            async with database.read() as session:
                await session.execute(text("SELECT no_such_column FROM customers"))
        async with database.read() as session:  # on PostgreSQL the failed transaction could run nothing more
            assert await session.scalar(select(func.count()).select_from(Customer)) >= 0
        assert shared.transactions == 2
    assert database.engine.pool.checkedout() == 0


async def test_reads_after_the_request_ended_get_their_own(database: Database) -> None:
    late: list[asyncio.Task[None]] = []

    async def field_finishing_late() -> None:
        await asyncio.sleep(0.05)  # its request has ended by now
        async with database.read() as session:
            assert await session.scalar(select(func.count()).select_from(Customer)) >= 0

    async with database.shared_reads() as shared:
        late.append(asyncio.create_task(field_finishing_late()))  # the task keeps the request's context
    await late[0]
    assert shared.transactions == 0
    assert database.engine.pool.checkedout() == 0


async def test_without_a_request_each_read_is_its_own(database: Database) -> None:
    began = count_begins(database)
    for _ in range(3):
        async with database.read() as session:
            await session.execute(select(func.count()).select_from(Customer))
    assert len(began) == 3
