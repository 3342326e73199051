"""A real SMTP server for tests (aiosmtpd, in a thread of its own on 127.0.0.1) that records what it
receives, and can refuse recipients or data, slow down, or hold one message until told to answer."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller

__all__ = ["Received", "Recorder", "free_port", "smtp_server"]


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


@dataclass
class Recorder:
    """The handler: every message the server accepted the data of, in order of arrival."""

    delay: float = 0.0  # seconds to wait before answering each DATA
    refuse_rcpt: frozenset[str] = frozenset()
    refuse_data: bool = False
    # Hold the hold_at-th message (1-based) after recording it, without answering, until `release` is set:
    # the sender has sent it and cannot know whether it arrived.
    hold_at: int | None = None
    received: list[Received] = field(default_factory=list)
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    held_message_id: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if address in self.refuse_rcpt:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if self.refuse_data:
            return "550 5.7.1 message refused by policy"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
            count = len(self.received)
        if count == self.hold_at:
            self.held_message_id = str(message["Message-ID"])
            self.held.set()
            await asyncio.to_thread(self.release.wait, 120)
        elif self.delay:
            await asyncio.sleep(self.delay)
        return "250 2.0.0 accepted"

    def message_ids(self) -> Counter[str]:
        with self._lock:
            return Counter(r.message_id for r in self.received)

    def count(self) -> int:
        with self._lock:
            return len(self.received)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def smtp_server(recorder: Recorder) -> Iterator[tuple[Recorder, int]]:
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield recorder, port
    finally:
        recorder.release.set()
        controller.stop()
