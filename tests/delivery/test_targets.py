from __future__ import annotations

import pytest

from sipscribe.delivery.errors import TargetConfigError
from sipscribe.delivery.targets import (
    MASK,
    TargetSpec,
    TlsOptions,
    allows_private,
    build_ssl_context,
    check_url,
    masked_options,
    merge_secrets,
    parse_options,
)

from .certs import issue, make_ca


def test_defaults() -> None:
    options = parse_options({})
    assert options.format == "json"
    assert options.realtime.policy == "drop_oldest"
    assert options.timeout_s == 5.0
    assert options.max_in_flight == 4
    assert options.auth is None and options.tls is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"format": "xml"}, "format: Input should be 'json' or 'vcon'"),
        ({"timeout_s": 0}, "timeout_s: Input should be greater than 0"),
        ({"max_in_flight": 100}, "max_in_flight: Input should be less than or equal to 64"),
        ({"realtime": {"policy": "sometimes"}}, "realtime.policy: Input should be"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
        (
            {"auth": {"type": "header", "header": "Bad Header", "value": "x"}},
            "auth.header.header: header name 'Bad Header' is not a valid HTTP field name",
        ),
        (
            {"auth": {"type": "header", "header": "Authorization", "value": "x"}},
            "auth.header.header: header 'Authorization' is set by sipscribe itself",
        ),
        (
            {
                "auth": {
                    "type": "oauth2",
                    "token_url": "ftp://x",
                    "client_id": "a",
                    "client_secret": "b",
                }
            },
            "auth.oauth2.token_url: OAuth2 token URL 'ftp://x' is not an absolute http(s) URL",
        ),
        ({"tls": {"ca_pem": "not a pem"}}, "tls.ca_pem is not a PEM CA bundle"),
        (
            {"tls": {"client_cert_pem": "x"}},
            "tls needs both client_cert_pem and client_key_pem, or neither",
        ),
    ],
)
def test_invalid_options_name_the_field(raw: dict, message: str) -> None:
    with pytest.raises(TargetConfigError) as info:
        parse_options(raw)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("hooks.example/x", "is not an absolute http(s) URL"),
        ("https://user:pw@hooks.example/", "must not contain credentials"),
        ("https://hooks.example/#frag", "has a fragment"),
        ("https://hooks.example:99999/", "is not valid"),
    ],
)
def test_check_url(url: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        check_url(url)
    assert message in str(info.value)


def test_mtls_material_loads_and_mismatch_is_refused() -> None:
    ca, ca_cert, ca_key = make_ca()
    client = issue(ca_cert, ca_key, "client", server=False)
    other = issue(ca_cert, ca_key, "other", server=False)
    context = build_ssl_context(
        TlsOptions(ca_pem=ca.cert, client_cert_pem=client.cert, client_key_pem=client.key)
    )
    assert context.verify_mode.name == "CERT_REQUIRED"
    with pytest.raises(TargetConfigError, match="tls client certificate and key do not load"):
        build_ssl_context(TlsOptions(client_cert_pem=client.cert, client_key_pem=other.key))


def test_secrets_are_masked_and_mask_round_trips() -> None:
    ca, ca_cert, ca_key = make_ca()
    client = issue(ca_cert, ca_key, "client", server=False)
    raw = {
        "auth": {
            "type": "oauth2",
            "token_url": "https://idp.example/token",
            "client_id": "sipscribe",
            "client_secret": "s3cret",
        },
        "tls": {"ca_pem": ca.cert, "client_cert_pem": client.cert, "client_key_pem": client.key},
    }
    options = parse_options(raw)
    shown = masked_options(options)
    assert shown["auth"]["client_secret"] == MASK
    assert shown["auth"]["client_id"] == "sipscribe"
    assert shown["tls"]["client_key_pem"] == MASK
    assert shown["tls"]["ca_pem"] == ca.cert
    assert "s3cret" not in str(shown) and client.key not in str(shown)
    merged = parse_options(merge_secrets(shown, options))
    assert merged == options


def test_mask_without_a_stored_secret_is_refused() -> None:
    stored = parse_options({"auth": {"type": "header", "header": "X-Key", "value": "v"}})
    new = {"auth": {"type": "query", "param": "key", "value": MASK}}
    with pytest.raises(
        TargetConfigError, match=r"^auth.value: masked value with no stored secret$"
    ):
        merge_secrets(new, stored)


def test_spec_subscriptions_and_private_setting() -> None:
    from types import SimpleNamespace

    record = SimpleNamespace(
        id="t1",
        tenant_id="ten",
        url="https://hooks.example/x",
        secret="whsec_0123456789abcdef",
        events=["transcript"],
        enabled=True,
        options={"realtime": {"policy": "at_least_once"}},
    )
    spec = TargetSpec.of(record, allow_private=False)
    assert spec.wants("transcript") and not spec.wants("bundle")
    assert spec.persistent_realtime
    record.events = []
    assert TargetSpec.of(record, allow_private=False).wants("bundle")
    record.enabled = False
    assert not TargetSpec.of(record, allow_private=False).wants("bundle")
    assert allows_private({"allow_private_webhooks": True})
    assert not allows_private({"allow_private_webhooks": "yes"})
    assert not allows_private(None)
