"""Small program files for tests that need a program of their own."""

from __future__ import annotations

__all__ = ["small_program"]


def small_program(
    code: str, *, name: str = "Small Test Program", provider: str = "Tests", bucket: str = "support"
) -> str:
    """One plan `basic` with one bucket of 3 activities a contract-anchored quarter."""
    return f'''
code = "{code}"
name = "{name}"
provider = "{provider}"
timezone = "UTC"

[plans.basic]
name = "Basic"

[plans.basic.buckets.{bucket}]
name = "{bucket.capitalize()}"
unit = "activities"
allowance = 3
period = "quarter"
anchor = "contract"
'''
