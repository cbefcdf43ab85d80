"""SIP over TLS (with and without client certificates) and over IPv6."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.sipp import start_server

pytestmark = pytest.mark.integration


def _cert(
    name: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    return cert, key


def _write(
    tmp: Path, name: str, pair: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
) -> tuple[Path, Path]:
    cert, key = pair
    c, k = tmp / f"{name}.crt", tmp / f"{name}.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return c, k


def options(transport: str, host: str, port: int) -> bytes:
    via_host = f"[{host}]" if ":" in host else host
    return (
        f"OPTIONS sip:srs@{via_host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {via_host}:5999;rport;branch=z9hG4bK-opt-{transport}\r\n"
        f"From: <sip:probe@{via_host}>;tag=1\r\nTo: <sip:srs@{via_host}>\r\n"
        f"Call-ID: opt-{transport}@test\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def tls_options(port: int, ctx: ssl.SSLContext) -> bytes:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1"
    )
    writer.write(options("TLS", "127.0.0.1", port))
    await writer.drain()
    data = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.close()
    return data


async def test_tls_with_client_certificates(tmp_path: Path, engine) -> None:  # type: ignore[no-untyped-def]
    ca = _cert("test CA", None, ca=True)
    server_pair = _cert("127.0.0.1", ca)
    client_pair = _cert("sbc.example", ca)
    ca_crt, _ = _write(tmp_path, "ca", ca)
    srv_crt, srv_key = _write(tmp_path, "server", server_pair)
    cli_crt, cli_key = _write(tmp_path, "client", client_pair)
    server = await start_server(
        tmp_path,
        engine,
        sip_tls_port=0,
        sip_tls_cert=srv_crt,
        sip_tls_key=srv_key,
        sip_tls_client_ca=ca_crt,
    )
    try:
        assert server.sip_tls_port
        trusted = ssl.create_default_context(cafile=str(ca_crt))
        trusted.load_cert_chain(cli_crt, cli_key)
        reply = await tls_options(server.sip_tls_port, trusted)
        assert reply.startswith(b"SIP/2.0 200 OK")
        anonymous = ssl.create_default_context(cafile=str(ca_crt))
        with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
            await tls_options(server.sip_tls_port, anonymous)
    finally:
        await server.stop(drain_timeout=1)


async def test_udp_over_ipv6(tmp_path: Path, engine) -> None:  # type: ignore[no-untyped-def]
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    server = await start_server(tmp_path, engine, sip_host="::1")
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(("::1", 0))
        loop = asyncio.get_running_loop()
        try:
            sock.sendto(options("UDP", "::1", server.sip_port), ("::1", server.sip_port))
            data, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 4096), 5)
        finally:
            sock.close()
        assert data.startswith(b"SIP/2.0 200 OK")
        assert b"received=::1" in data or b"rport=" in data
    finally:
        await server.stop(drain_timeout=1)
