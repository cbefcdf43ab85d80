"""Summary e-mails: a call's summary, action items and transcript sent over SMTP.

Three layers, each usable alone:

* ``build_summary_message`` is pure: a stored summary result and the utterances in, an
  ``EmailMessage`` (text/plain plus an escaped text/html alternative) out. It reads both
  summary shapes, the language model's (``callHeadline``, ``actionItems`` …) and the
  extractive fallback's (``headline``, ``summary``); a missing key drops its section.
* ``send_email`` hands a message to the configured SMTP server with the standard library's
  ``smtplib`` in a worker thread (no extra dependency; one message per call is not worth an
  async client). STARTTLS is required when ``smtp_starttls`` is on, so a server or a
  man-in-the-middle that strips it cannot downgrade us to plain text. Every failure becomes
  an ``EmailError`` whose ``kind`` names the step that failed.
* ``send_summary_email`` loads a call from the store and does both. When the call has no
  processed summary it still sends the transcript, with a note saying why the summary is
  missing: the recipients asked for the call, and the transcript is most of it.

Only redacted text leaves: an utterance's ``redacted_text`` where redaction kept both, else
its ``text`` (which then holds the only, already masked or never redacted, text).
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import smtplib
import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sipscribe.store import calls as call_store
from sipscribe.store import summaries as summary_store
from sipscribe.store import utterances as utterance_store
from sipscribe.store.models import SummaryState

if TYPE_CHECKING:
    from sipscribe.config import Settings
    from sipscribe.store.db import Database

log = logging.getLogger(__name__)

#: Most recipients one request may name: a summary goes to a team, not a mailing list.
MAX_RECIPIENTS = 50
MAX_SUBJECT_CHARS = 150
#: RFC 5321 §4.5.3.1: 64 octets of local part, 254 for the whole path in practice.
MAX_LOCAL_PART = 64
MAX_ADDRESS = 254

# RFC 5322 dot-atom local part; a domain of two or more LDH labels (RFC 1035). Quoted local
# parts, address literals and non-ASCII addresses are refused: real recipients do not need
# them, and each would widen what a client could smuggle into the SMTP envelope.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"(?:{_ATEXT})(?:\.{_ATEXT})*@{_LABEL}(?:\.{_LABEL})+")

NOTE_SUMMARY_FAILED = "The summary could not be produced for this call; the transcript follows."
NOTE_SUMMARY_PENDING = (
    "The summary was not ready when this e-mail was sent; the transcript follows."
)
NOTE_SUMMARY_NONE = "No summary was made for this call; the transcript follows."


# -- errors ---------------------------------------------------------------------------------


class EmailError(Exception):
    """Sending an e-mail failed.

    ``kind`` names the step: ``config``, ``connection``, ``timeout``, ``tls``, ``auth``,
    ``sender``, ``recipients``, ``message`` or ``protocol``. ``retryable`` says whether the
    same send may work later (a 4xx answer, a refused connection) or cannot (bad password).
    """

    def __init__(self, message: str, *, kind: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable


class RecipientError(ValueError):
    """A recipient list the API must refuse (400); ``index`` points at the bad entry."""

    def __init__(self, message: str, *, index: int | None = None, address: str | None = None):
        super().__init__(message)
        self.index = index
        self.address = address


# -- recipients -----------------------------------------------------------------------------


def validate_recipients(addresses: Sequence[str], *, limit: int = MAX_RECIPIENTS) -> list[str]:
    """Plain ``local@domain`` addresses, stripped and without repeats (case-insensitive).

    Raises ``RecipientError`` naming the first bad address and its index, for an empty list,
    or for more than ``limit`` distinct addresses. Display names (``Ann <a@x.org>``) are
    refused rather than parsed: the API field holds addresses only.
    """
    if isinstance(addresses, str):
        raise RecipientError("recipients must be a list of addresses, not one string")
    found: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(addresses):
        if not isinstance(raw, str):
            raise RecipientError(
                f"recipient {index} is {type(raw).__name__}, not an e-mail address", index=index
            )
        address = raw.strip()
        local = address.rsplit("@", 1)[0]
        if (
            not _ADDRESS.fullmatch(address)
            or len(address) > MAX_ADDRESS
            or len(local) > MAX_LOCAL_PART
        ):
            raise RecipientError(
                f"recipient {index} ({raw!r}) is not a valid e-mail address",
                index=index,
                address=raw,
            )
        if address.lower() in seen:
            continue
        seen.add(address.lower())
        found.append(address)
    if not found:
        raise RecipientError("at least one recipient e-mail address is needed")
    if len(found) > limit:
        raise RecipientError(f"{len(found)} recipients is more than the {limit} allowed")
    return found


# -- the message ----------------------------------------------------------------------------


class UtteranceLike(Protocol):
    """What the message needs of an utterance (``UtteranceRecord`` and ``bundle``'s
    ``SnapshotUtterance`` both fit). An optional ``redacted_text`` wins over ``text``."""

    @property
    def channel(self) -> int: ...
    @property
    def role(self) -> str | None: ...
    @property
    def start_ms(self) -> int: ...
    @property
    def text(self) -> str: ...


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    start_ms: int
    speaker: str  # "Agent", "Customer" or "Channel N"
    text: str


@dataclass(frozen=True, slots=True)
class SummaryContent:
    """The summary result's fields the e-mail shows; None or empty: section left out."""

    headline: str | None = None
    summary: str | None = None
    action_items: tuple[str, ...] = ()

    @classmethod
    def of(cls, result: Mapping[str, Any] | None) -> SummaryContent:
        """Read a stored result of either engine; odd or missing values are skipped."""
        if not isinstance(result, Mapping):
            return cls()
        headline = _clean(result.get("callHeadline")) or _clean(result.get("headline"))
        items = result.get("actionItems", result.get("action_items"))
        actions = [_action_text(item) for item in items] if isinstance(items, list) else []
        return cls(
            headline=headline,
            summary=_clean(result.get("summary"), keep_lines=True),
            action_items=tuple(a for a in actions if a),
        )


def _clean(value: Any, *, keep_lines: bool = False) -> str | None:
    if not isinstance(value, str):
        return None
    if keep_lines:
        lines = [" ".join(line.split()) for line in value.strip().splitlines()]
        text = "\n".join(line for line in lines if line)
    else:
        text = " ".join(value.split())
    return text or None


def _action_text(item: Any) -> str | None:
    """``"text (owner, due Friday)"`` from the model's ``{"text", "owner", "dueDate"}``."""
    if isinstance(item, str):
        return _clean(item)
    if not isinstance(item, Mapping):
        return None
    text = _clean(item.get("text")) or _clean(item.get("description"))
    if text is None:
        return None
    extras = [_clean(item.get("owner"))]
    due = _clean(item.get("dueDate")) or _clean(item.get("due_date"))
    extras.append(f"due {due}" if due else None)
    said = [e for e in extras if e]
    return f"{text} ({', '.join(said)})" if said else text


def transcript_lines(utterances: Sequence[UtteranceLike]) -> list[TranscriptLine]:
    """Time-ordered lines with the redacted text; empty utterances are dropped."""
    lines = []
    for u in sorted(utterances, key=lambda u: (u.start_ms, u.channel)):
        redacted = getattr(u, "redacted_text", None)
        text = " ".join((redacted if redacted is not None else u.text).split())
        if text:
            speaker = u.role.capitalize() if u.role else f"Channel {u.channel}"
            lines.append(TranscriptLine(u.start_ms, speaker, text))
    return lines


def clock(ms: int) -> str:
    """``mm:ss`` (``h:mm:ss`` from an hour on), as the text transcript format writes it."""
    s = max(0, ms) // 1000
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60:02d}:{s % 60:02d}"


def subject_for(content: SummaryContent, session_name: str | None) -> str:
    """One header line, whatever the model wrote: CR/LF would be header injection."""
    topic = content.headline or _clean(session_name)
    subject = f"Call summary: {topic}" if topic else "Call summary"
    if len(subject) > MAX_SUBJECT_CHARS:
        subject = subject[: MAX_SUBJECT_CHARS - 1].rstrip() + "…"
    return subject


def build_summary_message(
    *,
    sender: str,
    recipients: Sequence[str],
    summary: Mapping[str, Any] | None,
    utterances: Sequence[UtteranceLike],
    session_name: str | None = None,
    call_id: str | None = None,
    started_at: datetime | None = None,
    duration_sec: float | None = None,
    note: str | None = None,
) -> EmailMessage:
    """The summary e-mail: text/plain and an HTML alternative with the same content.

    ``note`` is shown first (e.g. why the summary is missing). Date and Message-ID are left
    to ``send_email``, so this stays a function of its arguments.
    """
    content = SummaryContent.of(summary)
    lines = transcript_lines(utterances)
    details = _details(session_name, call_id, started_at, duration_sec)
    message = EmailMessage()
    message["Subject"] = subject_for(content, session_name)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message.set_content(_plain(content, lines, details, _clean(note)))
    message.add_alternative(_html(content, lines, details, _clean(note)), subtype="html")
    return message


def _details(
    session_name: str | None,
    call_id: str | None,
    started_at: datetime | None,
    duration_sec: float | None,
) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if name := _clean(session_name):
        rows.append(("Session", name))
    if call_id:
        rows.append(("Call", call_id))
    if started_at is not None:
        when = started_at if started_at.tzinfo else started_at.replace(tzinfo=UTC)
        rows.append(("Time", when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")))
    if duration_sec is not None:
        rows.append(("Duration", clock(round(duration_sec * 1000))))
    return rows


def _plain(
    content: SummaryContent,
    lines: list[TranscriptLine],
    details: list[tuple[str, str]],
    note: str | None,
) -> str:
    parts: list[str] = []
    if note:
        parts.append(note)
    if details:
        parts.append("\n".join(f"{label}: {value}" for label, value in details))
    if content.headline:
        parts.append(f"Headline\n{content.headline}")
    if content.summary:
        parts.append(f"Summary\n{content.summary}")
    if content.action_items:
        parts.append("Action items\n" + "\n".join(f"- {a}" for a in content.action_items))
    body = "\n".join(f"[{clock(t.start_ms)}] {t.speaker}: {t.text}" for t in lines)
    parts.append(f"Transcript\n{body or 'Nothing was transcribed.'}")
    return "\n\n".join(parts) + "\n"


def _html(
    content: SummaryContent,
    lines: list[TranscriptLine],
    details: list[tuple[str, str]],
    note: str | None,
) -> str:
    e = html.escape
    parts = ['<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>', "<body>"]
    if note:
        parts.append(f"<p><em>{e(note)}</em></p>")
    if details:
        parts.append("<table>")
        parts += [f"<tr><th align=left>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in details]
        parts.append("</table>")
    if content.headline:
        parts.append(f"<h2>Headline</h2>\n<p>{e(content.headline)}</p>")
    if content.summary:
        paragraph = "<br>\n".join(e(line) for line in content.summary.splitlines())
        parts.append(f"<h2>Summary</h2>\n<p>{paragraph}</p>")
    if content.action_items:
        items = "".join(f"<li>{e(a)}</li>\n" for a in content.action_items)
        parts.append(f"<h2>Action items</h2>\n<ul>\n{items}</ul>")
    parts.append("<h2>Transcript</h2>")
    if lines:
        parts.append("<table>")
        parts += [
            f"<tr valign=top><td>{clock(t.start_ms)}</td><th align=left>{e(t.speaker)}</th>"
            f"<td>{e(t.text)}</td></tr>"
            for t in lines
        ]
        parts.append("</table>")
    else:
        parts.append("<p>Nothing was transcribed.</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


# -- sending --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SentEmail:
    """What the server took: ``refused`` maps addresses it turned down to its answer."""

    message_id: str
    accepted: tuple[str, ...]
    refused: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _SmtpOptions:
    host: str
    port: int
    starttls: bool
    tls: bool
    username: str | None
    password: str | None
    sender: str
    timeout: float

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def _options(settings: Settings) -> _SmtpOptions:
    if not settings.smtp_host:
        raise EmailError("e-mail is not configured: smtp_host is not set", kind="config")
    return _SmtpOptions(
        host=settings.smtp_host,
        port=settings.smtp_port,
        starttls=settings.smtp_starttls,
        tls=settings.smtp_tls,
        username=settings.smtp_username or None,
        password=settings.smtp_password,
        sender=settings.smtp_from,
        timeout=settings.smtp_timeout_s,
    )


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A verifying client context: the system CAs, or only ``ca_file`` when given."""
    try:
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise EmailError(f"smtp_ca_file {ca_file} is unusable: {exc}", kind="config") from exc


async def send_email(
    settings: Settings, message: EmailMessage, recipients: Sequence[str]
) -> SentEmail:
    """Send ``message`` to ``recipients`` (the envelope; the headers are not read for it).

    Adds Date and Message-ID when the message has none. Returns normally if the server took
    the message for at least one recipient (the others are in ``refused``); raises
    ``EmailError`` otherwise. ``smtp_timeout_s`` bounds each network step. Cancelling the
    caller does not stop a send already under way in its thread.
    """
    options = _options(settings)
    if not recipients:
        raise EmailError("no recipients to send to", kind="recipients")
    context = tls_context(settings.smtp_ca_file) if options.tls or options.starttls else None
    if "Date" not in message:
        message["Date"] = format_datetime(datetime.now(UTC))
    if "Message-ID" not in message:
        domain = options.sender.rpartition("@")[2] or "localhost"
        message["Message-ID"] = make_msgid(domain=domain)
    if options.username and context is None:
        log.warning("SMTP login to %s without TLS: the password is sent in clear", options.where)
    to = list(recipients)
    refused = await asyncio.to_thread(_send_blocking, options, context, message, to)
    answers = {
        addr: f"{code} {text.decode(errors='replace')}" for addr, (code, text) in refused.items()
    }
    if answers:
        log.warning("SMTP server %s refused some recipients: %s", options.where, answers)
    return SentEmail(
        message_id=str(message["Message-ID"]),
        accepted=tuple(a for a in to if a not in refused),
        refused=answers,
    )


def _send_blocking(
    options: _SmtpOptions,
    context: ssl.SSLContext | None,
    message: EmailMessage,
    recipients: list[str],
) -> dict[str, tuple[int, bytes]]:
    """The whole SMTP conversation, in a worker thread; foreign errors become EmailError."""
    step = "connect"
    client: smtplib.SMTP | None = None
    try:
        if options.tls:
            client = smtplib.SMTP_SSL(
                options.host, options.port, timeout=options.timeout, context=context
            )
        else:
            client = smtplib.SMTP(options.host, options.port, timeout=options.timeout)
        step = "EHLO"
        client.ehlo()
        if options.starttls and not options.tls:
            step = "STARTTLS"
            if not client.has_extn("starttls"):
                raise EmailError(
                    f"SMTP server {options.where} does not offer STARTTLS, which smtp_starttls "
                    "requires (turn it off only for a trusted relay)",
                    kind="tls",
                )
            client.starttls(context=context)
            client.ehlo()
        if options.username:
            step = "AUTH"
            client.login(options.username, options.password or "")
        step = "send"
        return client.send_message(message, from_addr=options.sender, to_addrs=recipients)
    except EmailError:
        raise
    except Exception as exc:
        raise _map_error(exc, options, step) from exc
    finally:
        if client is not None:
            _quit(client)


def _quit(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def _answer(exc: smtplib.SMTPResponseException) -> str:
    text = exc.smtp_error
    said = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    return f"{exc.smtp_code} {said}".strip()


def _map_error(exc: Exception, options: _SmtpOptions, step: str) -> EmailError:
    """One place that turns smtplib, ssl and socket errors into EmailError (order matters:
    SMTPException, SSLError and TimeoutError are all OSErrors)."""
    where = options.where
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return EmailError(
            f"SMTP server {where} refused the login of {options.username!r}: {_answer(exc)}",
            kind="auth",
        )
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        said = "; ".join(
            f"{addr}: {code} {text.decode(errors='replace')}"
            for addr, (code, text) in exc.recipients.items()
        )
        transient = all(400 <= code < 500 for code, _ in exc.recipients.values())
        return EmailError(
            f"SMTP server {where} refused every recipient ({said})",
            kind="recipients",
            retryable=transient,
        )
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return EmailError(
            f"SMTP server {where} refused the sender {options.sender!r}: {_answer(exc)}",
            kind="sender",
            retryable=400 <= exc.smtp_code < 500,
        )
    if isinstance(exc, smtplib.SMTPDataError):
        return EmailError(
            f"SMTP server {where} refused the message: {_answer(exc)}",
            kind="message",
            retryable=400 <= exc.smtp_code < 500,
        )
    if isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(
        exc.__context__, TimeoutError
    ):
        exc = exc.__context__  # smtplib reports a read timeout as a disconnect
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return EmailError(
            f"SMTP server {where} closed the connection during {step}",
            kind="connection",
            retryable=True,
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        return EmailError(
            f"SMTP server {where} answered {_answer(exc)} during {step}",
            kind="auth" if step == "AUTH" else "protocol",
            retryable=400 <= exc.smtp_code < 500,
        )
    if isinstance(exc, smtplib.SMTPException):  # e.g. "no suitable authentication method"
        return EmailError(
            f"SMTP {step} with {where} failed: {exc}",
            kind="auth" if step == "AUTH" else "protocol",
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return EmailError(
            f"SMTP server {where} has an untrusted certificate ({exc.verify_message}); "
            "set smtp_ca_file to the CA that signed it",
            kind="tls",
        )
    if isinstance(exc, ssl.SSLError):
        return EmailError(f"TLS with SMTP server {where} failed: {exc}", kind="tls")
    if isinstance(exc, TimeoutError):
        return EmailError(
            f"SMTP server {where} did not answer within {options.timeout:g} s during {step}",
            kind="timeout",
            retryable=True,
        )
    if isinstance(exc, ConnectionRefusedError):
        return EmailError(
            f"SMTP server {where} refused the connection", kind="connection", retryable=True
        )
    if isinstance(exc, socket.gaierror):
        return EmailError(
            f"SMTP server host {options.host!r} cannot be resolved: {exc}",
            kind="connection",
            retryable=True,
        )
    if isinstance(exc, OSError):
        return EmailError(
            f"SMTP server {where} unreachable during {step}: {exc}",
            kind="connection",
            retryable=True,
        )
    return EmailError(f"sending e-mail via {where} failed during {step}: {exc!r}", kind="protocol")


# -- the whole job --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SummaryEmailResult:
    """Outcome of ``send_summary_email``; ``log_fields`` is meant for ``extra=``."""

    call_id: str
    summary_state: str | None  # "processed", "failed", "created" or None (never requested)
    utterances: int
    sent: SentEmail

    def log_fields(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "summary_state": self.summary_state,
            "utterances": self.utterances,
            "message_id": self.sent.message_id,
            "recipients": len(self.sent.accepted),
            "refused": sorted(self.sent.refused),
        }


async def send_summary_email(
    database: Database,
    settings: Settings,
    *,
    call_id: str,
    tenant_id: str,
    emails: Sequence[str],
    session_name: str | None = None,
) -> SummaryEmailResult:
    """E-mail the call's summary and transcript to ``emails``.

    Without a processed summary (failed, still running, never requested) the transcript is
    sent with a note saying so. Raises ``RecipientError`` for bad addresses, ``LookupError``
    when the tenant has no such call, ``EmailError`` when sending fails.
    """
    recipients = validate_recipients(emails)
    _options(settings)  # fail before reading the call when e-mail is not configured
    async with database.session() as session:
        call = await call_store.get_call(session, call_id=call_id, tenant_id=tenant_id)
        if call is None:
            raise LookupError(f"call {call_id} not found")
        row = await summary_store.get_summary(session, call_id=call_id, tenant_id=tenant_id)
        utterances = await utterance_store.list_utterances(
            session, call_id=call_id, tenant_id=tenant_id
        )
    state = row.state if row is not None else None
    result = row.result if row is not None and state == SummaryState.PROCESSED.value else None
    note = None
    if result is None:
        note = {
            SummaryState.FAILED.value: NOTE_SUMMARY_FAILED,
            SummaryState.CREATED.value: NOTE_SUMMARY_PENDING,
        }.get(state or "", NOTE_SUMMARY_NONE)
    duration = call.duration_sec
    if duration is None and call.ended_at is not None:
        duration = max(0.0, (call.ended_at - call.started_at).total_seconds())
    message = build_summary_message(
        sender=settings.smtp_from,
        recipients=recipients,
        summary=result,
        utterances=utterances,
        session_name=session_name,
        call_id=call.id,
        started_at=call.started_at,
        duration_sec=duration,
        note=note,
    )
    sent = await send_email(settings, message, recipients)
    outcome = SummaryEmailResult(call.id, state, len(utterances), sent)
    log.info("summary e-mail sent", extra=outcome.log_fields())
    return outcome
