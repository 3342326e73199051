"""The activity catalog a plan offers: which activities, the bucket each is charged to, and what one
booking of it costs in that bucket's ledger units. Combining small activities into a larger piece of
work is simply a larger size."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from api.programs.schema import Activity, Bucket, Plan, Program

__all__ = ["CatalogError", "Offer", "charged_bucket", "contract_catalog", "plan_catalog"]


class CatalogError(ValueError):
    """An activity a plan lists cannot be charged to any of its buckets; the message says why."""


@dataclass(frozen=True)
class Offer:
    """One activity as a plan offers it."""

    code: str
    activity: Activity
    bucket_code: str
    bucket: Bucket
    units: int  # the cost of one booking, in the bucket's ledger units (activities, or minutes)


def charged_bucket(plan: Plan, activity: Activity) -> str | None:
    """The plan's bucket an activity is charged to: its one bucket counted in the activity's unit, or,
    where several are, the one `catalog_bucket` names (CatalogError when it names none of them). None
    when the plan has no bucket in that unit."""
    matching = [code for code, bucket in plan.buckets.items() if bucket.unit == activity.unit]
    if plan.catalog_bucket in matching:
        return plan.catalog_bucket
    if len(matching) > 1:
        raise CatalogError(
            f"several buckets count {activity.unit} ({', '.join(matching)}): name the one activities are "
            "charged to with catalog_bucket"
        )
    return matching[0] if matching else None


def _cost(activity: Activity, bucket: Bucket) -> int:
    units = bucket.to_ledger_units(activity.size)
    if units != units.to_integral_value():
        raise CatalogError(f"its size {activity.size} {activity.unit} is not a whole number of {bucket.ledger_unit}")
    if int(units) % bucket.increment:
        raise CatalogError(
            f"its size {activity.size} {activity.unit} is not a multiple of the bucket's increment "
            f"({bucket.increment} {bucket.ledger_unit})"
        )
    return int(units)


def plan_catalog(program: Program, plan: Plan) -> dict[str, Offer]:
    """The activities the plan offers, in catalog order. A plan that lists its catalog must be able to
    charge every activity it lists (CatalogError otherwise); a plan that does not offers every program
    activity counted in a unit it has a bucket for."""
    explicit = plan.catalog is not None
    offers: dict[str, Offer] = {}
    for code in plan.catalog if explicit else tuple(program.catalog):
        activity = program.catalog.get(code)
        if activity is None:
            raise CatalogError(f"no activity {code!r} in the program catalog")
        try:
            bucket_code = charged_bucket(plan, activity)
            if bucket_code is None:
                if explicit:
                    raise CatalogError(f"the plan has no bucket counted in {activity.unit}")
                continue
            bucket = plan.buckets[bucket_code]
            offers[code] = Offer(code, activity, bucket_code, bucket, _cost(activity, bucket))
        except CatalogError as exc:
            raise CatalogError(f"activity {code!r}: {exc}") from None
    return offers


def contract_catalog(program: Program, plan: Plan, order: Sequence[str] | None) -> dict[str, Offer]:
    """What a contract may book: its plan's catalog, narrowed to the list on its order when it has one
    (an activity the program has since withdrawn is simply no longer offered)."""
    offers = plan_catalog(program, plan)
    if order is None:
        return offers
    return {code: offers[code] for code in order if code in offers}
