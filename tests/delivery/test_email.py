"""Summary e-mails against a real SMTP server (aiosmtpd on 127.0.0.1, on the test's own loop):
plain SMTP, STARTTLS with a certificate made here, implicit TLS, AUTH PLAIN/LOGIN, refusals;
and ``send_summary_email`` reading a real SQLite store."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from sipscribe.config import Settings
from sipscribe.delivery.email import (
    MAX_RECIPIENTS,
    NOTE_SUMMARY_FAILED,
    NOTE_SUMMARY_NONE,
    EmailError,
    RecipientError,
    SummaryContent,
    build_summary_message,
    clock,
    send_email,
    send_summary_email,
    validate_recipients,
)
from sipscribe.store.calls import create_call, end_call
from sipscribe.store.db import Database, init_db
from sipscribe.store.summaries import finish_summary, request_summary
from sipscribe.store.tenants import create_tenant
from sipscribe.store.utterances import add_utterance

from .certs import issue, make_ca

USER, PASSWORD = "mailer", "s3cret-pw"

LLM_RESULT: dict[str, Any] = {
    "engine": "llm",
    "callHeadline": "Customer lost card; replacement ordered",
    "summary": "The customer reported card C-88 lost.\nThe agent blocked it and ordered a new one.",
    "actionItems": [
        {
            "id": "action-1",
            "text": "Send the replacement card",
            "owner": "agent",
            "dueDate": "Friday",
        },
        {"id": "action-2", "text": "Activate the new card", "owner": "customer", "dueDate": None},
    ],
    "smartAnswers": [],
    "note": "Card C-88 blocked.",
}

EXTRACTIVE_RESULT: dict[str, Any] = {
    "engine": "extractive",
    "headline": "I lost my card yesterday.",
    "summary": "Customer: I lost my card yesterday.\nAgent: I have blocked it.",
    "questions": [],
}


@dataclass(frozen=True)
class Utt:
    channel: int
    role: str | None
    start_ms: int
    text: str
    redacted_text: str | None = None


UTTERANCES = [
    Utt(1, "agent", 61_000, "I have blocked it <script>alert(1)</script> & ordered one."),
    Utt(0, "customer", 1_500, "I lost my card yesterday."),
    Utt(2, None, 3_725_000, "  "),  # nothing said: dropped
    Utt(0, "customer", 3_725_000, "My number is 4111 1111.", redacted_text="My number is ####."),
]


# -- the SMTP server ------------------------------------------------------------------------


@dataclass
class Received:
    envelope: Envelope
    tls: bool
    login: str | None

    @property
    def message(self) -> EmailMessage:
        assert isinstance(self.envelope.content, bytes)
        parsed = message_from_bytes(self.envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Collector:
    """aiosmtpd handler: keeps every message; refuses recipients in ``refuse``."""

    refuse: set[str] = field(default_factory=set)
    received: list[Received] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        login = session.auth_data.login.decode() if session.authenticated else None
        tls = server.transport.get_extra_info("ssl_object") is not None
        self.received.append(Received(envelope, tls, login))
        return "250 OK queued"


def check_password(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    session.auth_mechanism = mechanism  # type: ignore[attr-defined]
    return AuthResult(success=ok, handled=False, auth_data=data)


@dataclass
class Server:
    port: int
    handler: Collector
    sessions: list[Session]


@dataclass(frozen=True)
class Tls:
    ca_file: Path
    server: ssl.SSLContext


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 it signed, as PEM files."""
    folder = tmp_path_factory.mktemp("smtp-tls")
    ca_pem, ca_cert, ca_key = make_ca()
    leaf = issue(ca_cert, ca_key, "127.0.0.1", server=True)
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    for path, text in zip(paths, (ca_pem.cert, leaf.cert, leaf.key), strict=True):
        path.write_text(text)
    return paths


@pytest.fixture
def tls(tls_files: tuple[Path, Path, Path]) -> Tls:
    ca_file, cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return Tls(ca_file, context)


StartServer = Callable[..., Awaitable[Server]]


@pytest.fixture
async def smtp_server() -> AsyncIterator[StartServer]:
    """Start aiosmtpd servers on 127.0.0.1 (a free port each) on this loop; all closed after."""
    loop = asyncio.get_running_loop()
    servers: list[asyncio.Server] = []

    async def start(*, implicit_tls: ssl.SSLContext | None = None, **options: Any) -> Server:
        handler = Collector()
        sessions: list[Session] = []

        def protocol() -> SMTP:
            smtp = SMTP(handler, hostname="smtp.test", loop=loop, **options)
            original = smtp._create_session

            def remember() -> Session:
                session = original()
                sessions.append(session)
                return session

            smtp._create_session = remember  # type: ignore[method-assign]
            return smtp

        server = await loop.create_server(protocol, "127.0.0.1", 0, ssl=implicit_tls)
        servers.append(server)
        return Server(server.sockets[0].getsockname()[1], handler, sessions)

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def smtp_settings(port: int, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_starttls": False,
        "smtp_from": "calls@sipscribe.example",
        "smtp_timeout_s": 5.0,
    }
    return Settings(**{**values, **overrides})


def summary_message(recipients: list[str]) -> EmailMessage:
    return build_summary_message(
        sender="calls@sipscribe.example",
        recipients=recipients,
        summary=LLM_RESULT,
        utterances=UTTERANCES,
        session_name="Card desk",
    )


def parts(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(("plain",))
    markup = message.get_body(("html",))
    assert plain is not None and markup is not None
    # What travelled over SMTP has CRLF line ends; compare with \n.
    return (
        plain.get_content().replace("\r\n", "\n"),
        markup.get_content().replace("\r\n", "\n"),
    )


# -- recipients -----------------------------------------------------------------------------


def test_recipients_are_stripped_and_deduplicated() -> None:
    got = validate_recipients(
        [" ann@example.com", "Ann@Example.com", "o'brien+calls@mail.example.org"]
    )
    assert got == ["ann@example.com", "o'brien+calls@mail.example.org"]


@pytest.mark.parametrize(
    "bad",
    [
        "ann",
        "ann@",
        "@example.com",
        "ann@example",
        "ann@@example.com",
        "Ann <ann@example.com>",
        "ann@example.com, bob@example.com",
        "ann@example.com\r\nBcc: eve@example.com",
        "ann..b@example.com",
        "ann@-example.com",
        "änn@example.com",
        "a" * 65 + "@example.com",
    ],
)
def test_malformed_recipient_is_named(bad: str) -> None:
    with pytest.raises(RecipientError) as caught:
        validate_recipients(["ok@example.com", bad])
    assert caught.value.index == 1 and caught.value.address == bad
    assert "recipient 1" in str(caught.value) and repr(bad) in str(caught.value)


def test_recipient_list_limits() -> None:
    with pytest.raises(RecipientError, match="at least one"):
        validate_recipients([])
    with pytest.raises(RecipientError, match="not one string"):
        validate_recipients("ann@example.com")
    many = [f"user{i}@example.com" for i in range(MAX_RECIPIENTS + 1)]
    assert len(validate_recipients(many[:MAX_RECIPIENTS])) == MAX_RECIPIENTS
    with pytest.raises(RecipientError, match=f"more than the {MAX_RECIPIENTS} allowed"):
        validate_recipients(many)


# -- the message ----------------------------------------------------------------------------


def test_message_has_summary_actions_and_transcript() -> None:
    message = build_summary_message(
        sender="calls@sipscribe.example",
        recipients=["ann@example.com", "bob@example.com"],
        summary=LLM_RESULT,
        utterances=UTTERANCES,
        session_name="Card desk",
        call_id="call-1",
        started_at=datetime(2024, 5, 1, 14, 3, 7, tzinfo=UTC),
        duration_sec=3731.6,
    )
    assert message["Subject"] == "Call summary: Customer lost card; replacement ordered"
    assert message["To"] == "ann@example.com, bob@example.com"
    assert message.get_content_type() == "multipart/alternative"
    text, markup = parts(message)
    for expected in (
        "Session: Card desk",
        "Call: call-1",
        "Time: 2024-05-01 14:03:07 UTC",
        "Duration: 1:02:11",
        "Headline\nCustomer lost card; replacement ordered",
        "Summary\nThe customer reported card C-88 lost.\nThe agent blocked it",
        "- Send the replacement card (agent, due Friday)",
        "- Activate the new card (customer)",
        "[00:01] Customer: I lost my card yesterday.\n"
        "[01:01] Agent: I have blocked it <script>alert(1)</script> & ordered one.\n"
        "[1:02:05] Customer: My number is ####.\n",
    ):
        assert expected in text
    assert "4111" not in text and "4111" not in markup  # redacted text only
    assert "Channel 2" not in text  # the empty utterance
    assert "<li>Send the replacement card (agent, due Friday)</li>" in markup
    assert "<td>Session</td>" not in markup and "<td>Card desk</td>" in markup


def test_html_escapes_what_was_said() -> None:
    _, markup = parts(summary_message(["ann@example.com"]))
    assert "<script>" not in markup
    assert "I have blocked it &lt;script&gt;alert(1)&lt;/script&gt; &amp; ordered one." in markup


def test_extractive_result_and_missing_keys() -> None:
    message = build_summary_message(
        sender="calls@sipscribe.example",
        recipients=["ann@example.com"],
        summary=EXTRACTIVE_RESULT,
        utterances=UTTERANCES[:2],
    )
    text, markup = parts(message)
    assert message["Subject"] == "Call summary: I lost my card yesterday."
    assert "Summary\nCustomer: I lost my card yesterday.\nAgent: I have blocked it." in text
    assert "Action items" not in text and "Action items" not in markup
    assert "Customer: I lost my card yesterday.<br>" in markup
    bare = build_summary_message(
        sender="calls@sipscribe.example",
        recipients=["ann@example.com"],
        summary={"summary": 42, "actionItems": "not a list"},
        utterances=[],
        session_name="Weekly\r\nBcc: eve@example.com sync",
        note=NOTE_SUMMARY_NONE,
    )
    text, _ = parts(bare)
    assert bare["Subject"] == "Call summary: Weekly Bcc: eve@example.com sync"
    assert text.startswith(NOTE_SUMMARY_NONE)
    for absent in ("Headline", "Summary\n", "Action items"):
        assert absent not in text
    assert "Transcript\nNothing was transcribed." in text


def test_summary_content_reads_both_shapes() -> None:
    assert SummaryContent.of(None) == SummaryContent()
    assert SummaryContent.of({"headline": " a\n b ", "action_items": ["x", {"text": "y"}, 3]}) == (
        SummaryContent(headline="a b", action_items=("x", "y"))
    )
    assert clock(59_999) == "00:59" and clock(3_600_000) == "1:00:00"


def test_long_headline_subject_is_clipped() -> None:
    content = SummaryContent.of({"callHeadline": "word " * 100})
    message = build_summary_message(
        sender="a@example.com",
        recipients=["b@example.com"],
        summary={"callHeadline": "word " * 100},
        utterances=[],
    )
    assert content.headline is not None
    assert len(message["Subject"]) <= 150 and message["Subject"].endswith("…")


# -- sending --------------------------------------------------------------------------------


async def test_plain_smtp(smtp_server: StartServer) -> None:
    server = await smtp_server()
    recipients = ["ann@example.com", "bob@example.com"]
    sent = await send_email(smtp_settings(server.port), summary_message(recipients), recipients)
    assert sent.accepted == tuple(recipients) and sent.refused == {}
    [got] = server.handler.received
    assert got.envelope.mail_from == "calls@sipscribe.example"
    assert got.envelope.rcpt_tos == recipients
    assert not got.tls and got.login is None
    message = got.message
    assert message["Message-ID"] == sent.message_id and sent.message_id.endswith(
        "@sipscribe.example>"
    )
    assert message["Date"] is not None
    text, markup = parts(message)
    assert "Customer lost card; replacement ordered" in text
    assert "[01:01] Agent: I have blocked it <script>" in text
    assert "&lt;script&gt;" in markup and "<script>" not in markup


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_starttls_with_auth(smtp_server: StartServer, tls: Tls, mechanism: str) -> None:
    other = {"PLAIN": "LOGIN", "LOGIN": "PLAIN"}[mechanism]
    server = await smtp_server(
        tls_context=tls.server,
        require_starttls=True,
        authenticator=check_password,
        auth_required=True,
        auth_exclude_mechanism=[other],
    )
    settings = smtp_settings(
        server.port,
        smtp_starttls=True,
        smtp_ca_file=tls.ca_file,
        smtp_username=USER,
        smtp_password=PASSWORD,
    )
    await send_email(settings, summary_message(["ann@example.com"]), ["ann@example.com"])
    [got] = server.handler.received
    assert got.tls and got.login == USER
    assert [s.auth_mechanism for s in server.sessions if s.authenticated] == [mechanism]  # type: ignore[attr-defined]


async def test_implicit_tls(smtp_server: StartServer, tls: Tls) -> None:
    server = await smtp_server(
        implicit_tls=tls.server, authenticator=check_password, auth_require_tls=False
    )
    settings = smtp_settings(
        server.port,
        smtp_tls=True,
        smtp_ca_file=tls.ca_file,
        smtp_username=USER,
        smtp_password=PASSWORD,
    )
    await send_email(settings, summary_message(["ann@example.com"]), ["ann@example.com"])
    [got] = server.handler.received
    assert got.tls and got.login == USER


async def test_wrong_password(smtp_server: StartServer, tls: Tls) -> None:
    server = await smtp_server(
        tls_context=tls.server, require_starttls=True, authenticator=check_password
    )
    settings = smtp_settings(
        server.port,
        smtp_starttls=True,
        smtp_ca_file=tls.ca_file,
        smtp_username=USER,
        smtp_password="wrong",
    )
    with pytest.raises(EmailError, match=f"refused the login of '{USER}': 535") as caught:
        await send_email(settings, summary_message(["ann@example.com"]), ["ann@example.com"])
    assert caught.value.kind == "auth" and not caught.value.retryable
    assert server.handler.received == []


async def test_starttls_required_but_not_offered(smtp_server: StartServer) -> None:
    server = await smtp_server()  # no TLS context: no STARTTLS in the EHLO answer
    settings = smtp_settings(server.port, smtp_starttls=True)
    with pytest.raises(EmailError, match="does not offer STARTTLS") as caught:
        await send_email(settings, summary_message(["ann@example.com"]), ["ann@example.com"])
    assert caught.value.kind == "tls"
    assert server.handler.received == []


async def test_untrusted_certificate(smtp_server: StartServer, tls: Tls) -> None:
    server = await smtp_server(tls_context=tls.server, require_starttls=True)
    settings = smtp_settings(server.port, smtp_starttls=True)  # system CAs only
    with pytest.raises(EmailError, match=r"untrusted certificate.*smtp_ca_file") as caught:
        await send_email(settings, summary_message(["ann@example.com"]), ["ann@example.com"])
    assert caught.value.kind == "tls"
    assert server.handler.received == []


async def test_recipients_refused(smtp_server: StartServer) -> None:
    server = await smtp_server()
    server.handler.refuse = {"gone@example.com", "left@example.com"}
    settings = smtp_settings(server.port)
    both = ["gone@example.com", "left@example.com"]
    with pytest.raises(
        EmailError, match=r"refused every recipient.*gone@example\.com: 550"
    ) as caught:
        await send_email(settings, summary_message(both), both)
    assert caught.value.kind == "recipients" and not caught.value.retryable
    some = ["ann@example.com", "gone@example.com"]
    sent = await send_email(settings, summary_message(some), some)
    assert sent.accepted == ("ann@example.com",)
    assert sent.refused == {"gone@example.com": "550 5.1.1 no such mailbox"}
    assert [r.envelope.rcpt_tos for r in server.handler.received] == [["ann@example.com"]]


async def test_connection_refused() -> None:
    with socket.socket() as probe:  # a port that was just free and has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(EmailError, match=f"127.0.0.1:{port} refused the connection") as caught:
        await send_email(smtp_settings(port), summary_message(["a@example.com"]), ["a@example.com"])
    assert caught.value.kind == "connection" and caught.value.retryable


async def test_silent_server_times_out() -> None:
    release = asyncio.Event()

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        settings = smtp_settings(port, smtp_timeout_s=0.3)
        with pytest.raises(EmailError, match=r"did not answer within 0\.3 s") as caught:
            await send_email(settings, summary_message(["a@example.com"]), ["a@example.com"])
        assert caught.value.kind == "timeout"
    finally:
        release.set()
        server.close()
        await server.wait_closed()


async def test_not_configured() -> None:
    with pytest.raises(EmailError, match="smtp_host is not set") as caught:
        await send_email(Settings(), summary_message(["a@example.com"]), ["a@example.com"])
    assert caught.value.kind == "config"


async def test_unreadable_ca_file(tmp_path: Path) -> None:
    settings = smtp_settings(25, smtp_starttls=True, smtp_ca_file=tmp_path / "missing.pem")
    with pytest.raises(EmailError, match=r"smtp_ca_file .*missing\.pem is unusable") as caught:
        await send_email(settings, summary_message(["a@example.com"]), ["a@example.com"])
    assert caught.value.kind == "config"


# -- from the store -------------------------------------------------------------------------


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    database = await init_db(Settings(data_dir=data_dir))
    try:
        yield database
    finally:
        await database.dispose()


STARTED = datetime(2024, 5, 1, 14, 3, 7, tzinfo=UTC)


async def stored_call(database: Database, *, outcome: str) -> tuple[str, str]:
    """A finished call with three utterances and a summary that ``outcome`` decides."""
    async with database.session() as session:
        tenant = await create_tenant(session, name="acme")
        call = await create_call(
            session, tenant_id=tenant.id, source="dial-out", started_at=STARTED
        )
        await end_call(
            session, call_id=call.id, tenant_id=tenant.id, ended_at=STARTED + timedelta(seconds=95)
        )
        said = [
            (0, "customer", 1_000, "I lost my card <b>yesterday</b>.", None),
            (1, "agent", 4_000, "I have blocked it.", None),
            (0, "customer", 70_000, "My number is 4111 1111.", "My number is ####."),
        ]
        for channel, role, start, text, redacted in said:
            await add_utterance(
                session,
                call_id=call.id,
                channel=channel,
                role=role,
                start_ms=start,
                end_ms=start + 2000,
                text=text,
                redacted_text=redacted,
            )
        if outcome != "none":
            job = await request_summary(session, call_id=call.id, instructions=None)
            if outcome == "processed":
                await finish_summary(session, summary_id=job.id, result=LLM_RESULT)
            elif outcome == "failed":
                await finish_summary(session, summary_id=job.id, error="TypeError: boom")
        return call.id, tenant.id


async def test_send_summary_email_from_store(smtp_server: StartServer, sqlite_db: Database) -> None:
    server = await smtp_server()
    call_id, tenant_id = await stored_call(sqlite_db, outcome="processed")
    result = await send_summary_email(
        sqlite_db,
        smtp_settings(server.port),
        call_id=call_id,
        tenant_id=tenant_id,
        emails=["ann@example.com", " ann@example.com"],
        session_name="Card desk",
    )
    assert result.summary_state == "processed" and result.utterances == 3
    assert result.log_fields()["recipients"] == 1
    [got] = server.handler.received
    assert got.envelope.rcpt_tos == ["ann@example.com"]
    message = got.message
    assert message["Subject"] == "Call summary: Customer lost card; replacement ordered"
    assert message["Message-ID"] == result.sent.message_id
    text, markup = parts(message)
    for expected in (
        "Session: Card desk",
        f"Call: {call_id}",
        "Time: 2024-05-01 14:03:07 UTC",
        "Duration: 01:35",
        "- Send the replacement card (agent, due Friday)",
        "[00:01] Customer: I lost my card <b>yesterday</b>.\n"
        "[00:04] Agent: I have blocked it.\n"
        "[01:10] Customer: My number is ####.",
    ):
        assert expected in text
    assert "4111" not in text and "4111" not in markup
    assert "&lt;b&gt;yesterday&lt;/b&gt;" in markup


async def test_failed_summary_still_sends_transcript(
    smtp_server: StartServer, sqlite_db: Database
) -> None:
    server = await smtp_server()
    call_id, tenant_id = await stored_call(sqlite_db, outcome="failed")
    result = await send_summary_email(
        sqlite_db,
        smtp_settings(server.port),
        call_id=call_id,
        tenant_id=tenant_id,
        emails=["a@example.com"],
    )
    assert result.summary_state == "failed"
    text, _ = parts(server.handler.received[0].message)
    assert server.handler.received[0].message["Subject"] == "Call summary"
    assert text.startswith(NOTE_SUMMARY_FAILED)
    assert "[00:04] Agent: I have blocked it." in text and "Headline" not in text
    assert "boom" not in text  # the engine's error stays internal


async def test_unknown_call_and_bad_recipients(
    smtp_server: StartServer, sqlite_db: Database
) -> None:
    server = await smtp_server()
    call_id, _ = await stored_call(sqlite_db, outcome="none")
    async with sqlite_db.session() as session:
        other = await create_tenant(session, name="globex")
    settings = smtp_settings(server.port)
    with pytest.raises(LookupError, match=f"call {call_id} not found"):
        await send_summary_email(
            sqlite_db, settings, call_id=call_id, tenant_id=other.id, emails=["a@example.com"]
        )
    with pytest.raises(RecipientError, match="recipient 0"):
        await send_summary_email(
            sqlite_db, settings, call_id=call_id, tenant_id=other.id, emails=["nope"]
        )
    assert server.handler.received == []
