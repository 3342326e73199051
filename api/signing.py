"""Webhook signatures, as Stripe signs its events: `Entitle-Signature: t=<unix seconds>,v1=<hex>` where the hex
is HMAC-SHA256 keyed with the subscription's secret over `"<t>.<body>"`. Pure functions, no I/O: an integrator
may copy this module as it is to verify what it receives."""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = [
    "DEFAULT_TOLERANCE",
    "SCHEME",
    "SIGNATURE_HEADER",
    "sign",
    "signature_header",
    "signature_problem",
    "verify_signature",
]

SIGNATURE_HEADER = "Entitle-Signature"
SCHEME = "v1"
# How old (or how far ahead of the receiver's clock) a signed timestamp may be: older requests are replays.
DEFAULT_TOLERANCE = 300
_MAX_HEADER = 4096


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def sign(secret: str | bytes, timestamp: int, body: str | bytes) -> str:
    """The hex HMAC-SHA256 of `"<timestamp>.<body>"` keyed with the secret."""
    return hmac.new(_bytes(secret), str(int(timestamp)).encode() + b"." + _bytes(body), hashlib.sha256).hexdigest()


def signature_header(secret: str | bytes, body: str | bytes, timestamp: int | None = None) -> str:
    """The `Entitle-Signature` value for a body sent now (or at `timestamp`)."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},{SCHEME}={sign(secret, t, body)}"


def signature_problem(
    secret: str | bytes,
    header: str | None,
    body: str | bytes,
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
) -> str | None:
    """Why the header does not vouch for the body (None: it does). The body must be the raw bytes received,
    before any JSON parsing. Any `v1` signature in the header may match (several appear while a secret is
    being replaced); other schemes are ignored. The timestamp must lie within `tolerance` seconds of now,
    either way, so a captured request cannot be replayed later."""
    if not header:
        return "no signature header"
    if len(header) > _MAX_HEADER:
        return "the signature header is too long"
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            if not value.isdigit() or len(value) > 12:
                return "the timestamp is not a whole number of seconds"
            timestamp = int(value)
        elif key == SCHEME:
            candidates.append(value)
    if timestamp is None:
        return "the header has no timestamp (t=)"
    if not candidates:
        return f"the header has no {SCHEME} signature"
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return f"the timestamp is {int(current - timestamp)} s from now, outside the tolerance of {tolerance} s"
    expected = sign(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        return "no signature matches the body"
    return None


def verify_signature(
    secret: str | bytes,
    header: str | None,
    body: str | bytes,
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
) -> bool:
    """Whether the `Entitle-Signature` header vouches for the raw body, signed within `tolerance` seconds
    of now (see `signature_problem` for the reason when it does not)."""
    return signature_problem(secret, header, body, tolerance, now=now) is None
