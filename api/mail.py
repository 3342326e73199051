"""E-mail backends, like Django's: one message built with the standard `email` package, sent over SMTP
(aiosmtplib) where a server is configured, or written as an `.eml` file where none is (a fresh machine)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import Protocol

import aiosmtplib

from api.config import Settings

__all__ = [
    "FileBackend",
    "MailBackend",
    "NothingToSend",
    "Outgoing",
    "SmtpBackend",
    "build_outgoing",
    "domain_of",
    "make_backend",
    "message_id_for",
]


def domain_of(mail_from: str) -> str:
    """The domain of a From address ("Entitle <entitle@example.com>" → "example.com")."""
    return parseaddr(mail_from)[1].rpartition("@")[2] or "localhost"


def message_id_for(dedupe_key: str, mail_from: str) -> str:
    """The Message-ID of the logical message named by dedupe_key: the same key, the same Message-ID, so a
    message resent after a crash is recognisably the one already sent."""
    return f"<{hashlib.sha256(dedupe_key.encode()).hexdigest()[:32]}@{domain_of(mail_from)}>"


class NothingToSend(ValueError):
    """The message cannot be sent whatever is retried: no address to send it to, or a malformed one."""


@dataclass(frozen=True)
class Outgoing:
    """A message ready for a backend: its MIME form and the SMTP envelope's recipients."""

    message_id: str
    kind: str
    created_at: datetime
    recipients: tuple[str, ...]
    message: EmailMessage


_ADDRESS = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+")


def build_outgoing(
    *,
    mail_from: str,
    message_id: str,
    kind: str,
    created_at: datetime,
    recipient_name: str,
    recipient_email: str | None,
    extra_emails: Sequence[str],
    subject: str,
    body: str,
    html_body: str | None,
) -> Outgoing:
    """The message with From, To, Subject, Date (when it was queued, so a resend is byte for byte the same)
    and Message-ID; plain text, with the HTML alternative where there is one."""
    recipients: list[str] = []
    for address in (recipient_email, *extra_emails):
        if address and address.lower() not in {r.lower() for r in recipients}:
            if not _ADDRESS.fullmatch(address):
                raise NothingToSend(f"{address!r} is not an e-mail address")
            recipients.append(address)
    if not recipients:
        raise NothingToSend(f"{recipient_name or 'the recipient'} has no e-mail address: nothing to send to")
    to = [formataddr((recipient_name, recipient_email)) if recipient_email else None]
    to = [a for a in to if a] + [r for r in recipients if r != recipient_email]
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Date"] = format_datetime(created_at.astimezone(UTC))
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies, please
    message["X-Entitle-Kind"] = kind
    message.set_content(body)
    if html_body is not None:
        message.add_alternative(html_body, subtype="html")
        # A boundary of its own rather than a random one: a resend is the same bytes as the first send.
        message.set_boundary(f"=_entitle_{hashlib.sha256(message_id.encode()).hexdigest()[:24]}")
    return Outgoing(message_id, kind, created_at, tuple(recipients), message)


class MailBackend(Protocol):
    async def send(self, outgoing: Outgoing) -> str | None:
        """Deliver one message or raise. Returns a note worth keeping (recipients refused), or None."""
        ...

    async def close(self) -> None: ...


class FileBackend:
    """Writes each message to `<folder>/<queued at>-<kind>-<short id>.eml`. The name depends on the
    message alone, and the file appears whole (written aside, then renamed): writing a message again
    replaces its file, it never makes a second one."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path_for(self, outgoing: Outgoing) -> Path:
        stamp = outgoing.created_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        short = outgoing.message_id.strip("<>").partition("@")[0][:12]
        kind = re.sub(r"[^A-Za-z0-9_.-]", "_", outgoing.kind)
        return self.folder / f"{stamp}-{kind}-{short}.eml"

    async def send(self, outgoing: Outgoing) -> str | None:
        await asyncio.to_thread(self._write, outgoing)
        return None

    def _write(self, outgoing: Outgoing) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path_for(outgoing)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_bytes(outgoing.message.as_bytes())
        os.replace(partial, path)

    async def close(self) -> None:
        return None


class SmtpBackend:
    """Sends over one SMTP connection, opened at the first message and kept for the next; any error closes
    it, and the next message opens a new one. Each send, connection included, is bounded by the timeout."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.sender = parseaddr(settings.mail_from)[1]
        self._smtp: aiosmtplib.SMTP | None = None

    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_user,
            password=s.smtp_password,
            use_tls=s.smtp_security == "tls",
            start_tls=True if s.smtp_security == "starttls" else False,
            timeout=s.smtp_timeout_seconds,
        )

    async def send(self, outgoing: Outgoing) -> str | None:
        try:
            async with asyncio.timeout(self.settings.smtp_timeout_seconds):
                if self._smtp is None or not self._smtp.is_connected:
                    self._smtp = self._client()
                    await self._smtp.connect()  # STARTTLS and login too, as configured
                refused, _ = await self._smtp.send_message(
                    outgoing.message, sender=self.sender, recipients=list(outgoing.recipients)
                )
        except BaseException:
            await self._drop()
            raise
        if refused:
            return "refused by the server: " + "; ".join(
                f"{address} ({response.code} {response.message})" for address, response in sorted(refused.items())
            )
        return None

    async def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    async def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None and smtp.is_connected:
            try:
                await smtp.quit(timeout=self.settings.smtp_timeout_seconds)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                smtp.close()


def make_backend(settings: Settings) -> MailBackend:
    """SMTP when ENTITLE_SMTP_HOST is set; otherwise .eml files in ENTITLE_OUTBOX_DIR."""
    if settings.smtp_host:
        return SmtpBackend(settings)
    return FileBackend(settings.outbox_dir)
