"""load_programs: created / unchanged / updated, all or nothing, and no change to the terms of a plan in use."""

from __future__ import annotations

import pytest

from api.programs.loader import parse_program
from api.services import programs
from api.services.context import Actor
from api.services.errors import Conflict, ErrorCode, NotFound, PermissionDenied, ValidationFailed
from tests.conftest import ADMIN, unique

TEMPLATE = """
code = "{code}"
name = "Test Support"
provider = "Test Provider"
description = "First wording."
timezone = "UTC"

[plans.basic]
name = "Basic"
description = "The basic plan."

[plans.basic.buckets.support]
name = "Support activities"
unit = "activities"
allowance = 4
period = "quarter"
anchor = "contract"

[plans.basic.buckets.reviews]
name = "Reviews"
unit = "activities"
allowance = 2
period = "year"
anchor = "contract"

[plans.spare]
name = "Spare"

[plans.spare.buckets.support]
name = "Support activities"
unit = "activities"
allowance = 8
period = "quarter"
anchor = "contract"
"""


def program_text(code: str) -> str:
    return TEMPLATE.format(code=code)


def changed(text: str, old: str, new: str, count: int = 1) -> str:
    assert text.count(old) >= count, old
    return text.replace(old, new, count)


def without_section(text: str, header: str) -> str:
    """Drop one [table] and its keys."""
    lines, out, skipping = text.splitlines(keepends=True), [], False
    for line in lines:
        if line.startswith("["):
            skipping = line.strip() == header
        if not skipping:
            out.append(line)
    return "".join(out)


async def load(ctx, *texts: str):  # type: ignore[no-untyped-def]
    return await programs.load_programs(ctx, ADMIN, [parse_program(t, file=f"test-{i}.toml") for i, t in enumerate(texts)])


async def stored(ctx, code: str):  # type: ignore[no-untyped-def]
    record, plans = await programs.get_program(ctx, ADMIN, code)
    return record.source_sha256, record.source, record.document, record.name, [(p.record.code, p.record.name) for p in plans]


@pytest.fixture
async def in_use(ctx, make_contract):  # type: ignore[no-untyped-def]
    """A loaded test program whose plan `basic` has a contract (and `spare` has none)."""
    code = unique("prog")
    text = program_text(code)
    await load(ctx, text)
    await make_contract(program=code, plan="basic")
    return code, text


async def test_load_statuses(ctx):
    code = unique("prog")
    text = program_text(code)
    (created,) = await load(ctx, text)
    assert (created.code, created.status) == (code, "created")
    assert created.program.source == text
    record, plans = await programs.get_program(ctx, ADMIN, code)
    assert record.name == "Test Support"
    assert [p.record.code for p in plans] == ["basic", "spare"]
    assert plans[0].rules.buckets["support"].allowance == 4

    (again,) = await load(ctx, text)
    assert again.status == "unchanged"
    assert again.program.id == created.program.id

    reworded = changed(changed(text, "First wording.", "Second wording."), 'name = "Basic"', 'name = "Basic Plus"')
    (updated,) = await load(ctx, reworded)
    assert updated.status == "updated"
    assert updated.program.id == created.program.id
    record, plans = await programs.get_program(ctx, ADMIN, code)
    assert record.document["description"] == "Second wording."
    assert record.source == reworded
    assert [(p.record.code, p.record.name) for p in plans] == [("basic", "Basic Plus"), ("spare", "Spare")]

    (unchanged,) = await load(ctx, reworded)
    assert unchanged.status == "unchanged"


async def test_a_plan_in_use_may_change_its_wording(ctx, in_use):
    code, text = in_use
    reworded = changed(
        changed(text, 'description = "The basic plan."', 'description = "The basic plan, reworded."'),
        'name = "Support activities"',
        'name = "Advisory activities"',
    )
    (outcome,) = await load(ctx, reworded)
    assert outcome.status == "updated"
    _, plans = await programs.get_program(ctx, ADMIN, code)
    basic = plans[0]
    assert basic.rules.description == "The basic plan, reworded."
    assert basic.rules.buckets["support"].name == "Advisory activities"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda t: changed(t, "allowance = 4", "allowance = 6"), "plans.basic.buckets.support.allowance"),
        (lambda t: changed(t, 'period = "quarter"', 'period = "year"'), "plans.basic.buckets.support.period"),
        (lambda t: changed(t, 'anchor = "contract"', 'anchor = "calendar"'), "plans.basic.buckets.support.anchor"),
        (lambda t: changed(t, "allowance = 2", "allowance = 2\nincrement = 2"), "plans.basic.buckets.reviews.increment"),
        (lambda t: without_section(t, "[plans.basic.buckets.reviews]"), "plans.basic.buckets.reviews"),
        (
            lambda t: without_section(
                without_section(without_section(t, "[plans.basic]"), "[plans.basic.buckets.support]"),
                "[plans.basic.buckets.reviews]",
            ),
            "plans.basic",
        ),
    ],
    ids=["allowance", "period", "anchor", "increment", "remove-bucket", "remove-plan"],
)
async def test_the_terms_of_a_plan_in_use_cannot_change(ctx, in_use, change, field):
    code, text = in_use
    before = await stored(ctx, code)
    new_text = change(text)
    parse_program(new_text)  # the new file itself is valid
    with pytest.raises(Conflict) as refused:
        await load(ctx, new_text)
    assert (refused.value.code, refused.value.field) == (ErrorCode.PROGRAM_IN_USE, field)
    assert "test-0.toml" in refused.value.message
    assert await stored(ctx, code) == before


async def test_plans_without_contracts_may_change_or_go(ctx, in_use):
    code, text = in_use
    (outcome,) = await load(ctx, changed(text, "allowance = 8", "allowance = 12"))
    assert outcome.status == "updated"
    _, plans = await programs.get_program(ctx, ADMIN, code)
    assert plans[1].rules.buckets["support"].allowance == 12

    (outcome,) = await load(ctx, without_section(without_section(text, "[plans.spare]"), "[plans.spare.buckets.support]"))
    assert outcome.status == "updated"
    _, plans = await programs.get_program(ctx, ADMIN, code)
    assert [p.record.code for p in plans] == ["basic"]


async def test_a_bad_set_of_files_loads_nothing(ctx, in_use):
    code, text = in_use
    before = await stored(ctx, code)
    fresh = unique("prog")
    with pytest.raises(Conflict) as refused:
        await load(ctx, program_text(fresh), changed(text, "allowance = 4", "allowance = 5"))
    assert refused.value.code == ErrorCode.PROGRAM_IN_USE
    with pytest.raises(NotFound):
        await programs.get_program(ctx, ADMIN, fresh)
    assert await stored(ctx, code) == before

    # Also when the good file comes after the refused one.
    with pytest.raises(Conflict):
        await load(ctx, changed(text, "allowance = 4", "allowance = 5"), program_text(fresh))
    with pytest.raises(NotFound):
        await programs.get_program(ctx, ADMIN, fresh)
    assert await stored(ctx, code) == before


async def test_an_update_and_a_refusal_together_load_nothing(ctx, in_use):
    code, text = in_use
    other = unique("prog")
    await load(ctx, program_text(other))
    before_other, before = await stored(ctx, other), await stored(ctx, code)
    reworded_other = changed(program_text(other), "First wording.", "Updated wording.")
    with pytest.raises(Conflict):
        await load(ctx, reworded_other, changed(text, 'period = "quarter"', 'period = "year"'))
    assert await stored(ctx, other) == before_other
    assert await stored(ctx, code) == before


async def test_one_code_in_two_files_loads_nothing(ctx):
    code = unique("prog")
    with pytest.raises(ValidationFailed) as refused:
        await load(ctx, program_text(code), changed(program_text(code), "First wording.", "Twin."))
    assert refused.value.field == "code"
    with pytest.raises(NotFound):
        await programs.get_program(ctx, ADMIN, code)


async def test_only_admins_load_programs(ctx):
    code = unique("prog")
    staff = Actor(kind="staff", ref="user:s", name="Support staff", roles=frozenset({"support_engineer"}))
    with pytest.raises(PermissionDenied):
        await programs.load_programs(ctx, staff, [parse_program(program_text(code))])
    with pytest.raises(NotFound):
        await programs.get_program(ctx, ADMIN, code)
