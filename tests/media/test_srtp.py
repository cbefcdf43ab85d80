from __future__ import annotations

import base64

import pylibsrtp
import pytest

from sipscribe.media.rtcp import RtcpPacket, RtcpReceiverReport
from sipscribe.media.rtp import RtpPacket
from sipscribe.media.srtp import (
    CryptoAttribute,
    CryptoAttributeError,
    SrtpAuthError,
    SrtpError,
    SrtpReceiver,
    SrtpReplayError,
    SrtpSender,
)

KEY = bytes(range(30))
KEY_B64 = base64.b64encode(KEY).decode()  # "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd"


def test_parse_rfc_4568_example() -> None:
    crypto = CryptoAttribute.parse(
        "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32"
    )
    assert crypto.tag == 1
    assert crypto.suite == "AES_CM_128_HMAC_SHA1_80"
    assert len(crypto.key) == 30
    assert crypto.lifetime == 1 << 20
    assert crypto.mki == (1, 32)
    assert str(crypto) == (
        "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32"
    )


@pytest.mark.parametrize(
    "text",
    [
        f"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{KEY_B64}",
        f"crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{KEY_B64}",
        f"2 AES_CM_128_HMAC_SHA1_32 inline:{KEY_B64}",
    ],
)
def test_parse_with_or_without_prefix(text: str) -> None:
    crypto = CryptoAttribute.parse(text)
    assert (crypto.tag, crypto.suite, crypto.key) == (2, "AES_CM_128_HMAC_SHA1_32", KEY)
    assert str(crypto) == f"2 AES_CM_128_HMAC_SHA1_32 inline:{KEY_B64}"


def test_decimal_lifetime_session_params_and_missing_base64_padding() -> None:
    key28 = bytes(range(28))  # AEAD_AES_128_GCM: 16-byte key + 12-byte salt
    b64 = base64.b64encode(key28).decode()
    assert b64.endswith("=")
    crypto = CryptoAttribute.parse(f"9 AEAD_AES_128_GCM inline:{b64.rstrip('=')}|1000 WSH=256")
    assert crypto.key == key28
    assert crypto.lifetime == 1000
    assert crypto.session_params == ("WSH=256",)
    assert crypto.window_size == 256
    assert str(crypto) == f"9 AEAD_AES_128_GCM inline:{b64}|1000 WSH=256"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 AES_CM_128_HMAC_SHA1_80", "crypto attribute needs a tag, a suite and key params"),
        (
            f"x AES_CM_128_HMAC_SHA1_80 inline:{KEY_B64}",
            "crypto attribute tag 'x' is not 1-9 digits",
        ),
        (
            f"1 F8_128_HMAC_SHA1_80 inline:{KEY_B64}",
            "crypto suite F8_128_HMAC_SHA1_80 is not supported",
        ),
        (f"1 AES_CM_128_HMAC_SHA1_80 uri:{KEY_B64}", "crypto key method 'uri' is not inline"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:!!!!", "crypto attribute key is not base64"),
        (
            "1 AES_CM_128_HMAC_SHA1_80 inline:QUJD",
            "crypto attribute key for AES_CM_128_HMAC_SHA1_80 is 3 bytes, expected 30",
        ),
        (
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_B64}|2^20|1:4;inline:{KEY_B64}|2^20|2:4",
            "crypto attribute with several keys is not supported",
        ),
        (
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_B64}|2^x",
            "crypto attribute key parameter '2^x' is invalid",
        ),
        (
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_B64}|1:4|2^20",
            "crypto attribute key parameter '2^20' is invalid",
        ),
        (
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_B64}|1|2|3",
            "crypto attribute key params have too many fields",
        ),
        (
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_B64}|1:0",
            "crypto attribute MKI length 0 is invalid",
        ),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(CryptoAttributeError) as info:
        CryptoAttribute.parse(text)
    assert str(info.value) == message


def test_generate_gives_fresh_keys_of_the_right_length() -> None:
    a = CryptoAttribute.generate(1)
    b = CryptoAttribute.generate(1)
    assert a.key != b.key and len(a.key) == 30
    assert CryptoAttribute.parse(str(a)) == a
    assert len(CryptoAttribute.generate(2, "AEAD_AES_256_GCM").key) == 44


def test_receiver_refuses_mki_and_unsupported_session_params() -> None:
    with pytest.raises(CryptoAttributeError, match="with MKI is not supported"):
        SrtpReceiver(CryptoAttribute.parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_B64}|2^20|1:4"))
    with pytest.raises(CryptoAttributeError, match="UNENCRYPTED_SRTP is not supported"):
        SrtpReceiver(
            CryptoAttribute.parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_B64} UNENCRYPTED_SRTP")
        )


def rtp(seq: int, ssrc: int = 0x5EED) -> bytes:
    return bytes(
        RtpPacket(
            payload_type=0,
            sequence_number=seq,
            timestamp=seq * 160,
            ssrc=ssrc,
            payload=bytes([seq & 0xFF]) * 160,
        )
    )


def pylibsrtp_sender(crypto: CryptoAttribute) -> pylibsrtp.Session:
    """The peer: plain pylibsrtp configured by hand, not through our module."""
    profile = {
        "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
        "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
        "AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
        "AEAD_AES_256_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
    }[crypto.suite]
    return pylibsrtp.Session(
        pylibsrtp.Policy(
            key=crypto.key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile
        )
    )


@pytest.mark.parametrize(
    ("suite", "tag_length"),
    [
        ("AES_CM_128_HMAC_SHA1_80", 10),
        ("AES_CM_128_HMAC_SHA1_32", 4),
        ("AEAD_AES_128_GCM", 16),
        ("AEAD_AES_256_GCM", 16),
    ],
)
def test_unprotect_what_a_real_sender_protected(suite: str, tag_length: int) -> None:
    offer = CryptoAttribute.generate(1, suite)
    # The offer travels as SDP text; we key from what we parse.
    receiver = SrtpReceiver(CryptoAttribute.parse(f"a=crypto:{offer}"))
    sender = pylibsrtp_sender(offer)
    for seq in range(65530, 65536):
        protected = sender.protect(rtp(seq))
        assert len(protected) == len(rtp(seq)) + tag_length
        assert protected[12:] != rtp(seq)[12:]  # really encrypted
        assert receiver.unprotect(protected) == rtp(seq)
    report = bytes(RtcpReceiverReport(ssrc=0x5EED))
    assert RtcpPacket.parse_compound(receiver.unprotect_rtcp(sender.protect_rtcp(report))) == [
        RtcpReceiverReport(ssrc=0x5EED)
    ]


def test_tampered_packet_is_an_auth_error() -> None:
    crypto = CryptoAttribute.generate()
    receiver = SrtpReceiver(crypto)
    sender = pylibsrtp_sender(crypto)
    protected = bytearray(sender.protect(rtp(1)))
    protected[20] ^= 0x01
    with pytest.raises(SrtpAuthError) as info:
        receiver.unprotect(bytes(protected))
    assert str(info.value) == "SRTP packet failed authentication"
    # the stream carries on: the next good packet still decrypts
    assert receiver.unprotect(sender.protect(rtp(2))) == rtp(2)


def test_wrong_key_and_plain_rtp_are_auth_errors() -> None:
    receiver = SrtpReceiver(CryptoAttribute.generate())
    other = pylibsrtp_sender(CryptoAttribute.generate())
    with pytest.raises(SrtpAuthError):
        receiver.unprotect(other.protect(rtp(1)))
    with pytest.raises(SrtpAuthError):
        receiver.unprotect(rtp(2) + bytes(10))


def test_tampered_rtcp_is_an_auth_error() -> None:
    crypto = CryptoAttribute.generate()
    receiver = SrtpReceiver(crypto)
    protected = bytearray(pylibsrtp_sender(crypto).protect_rtcp(bytes(RtcpReceiverReport(ssrc=1))))
    protected[5] ^= 0x80
    with pytest.raises(SrtpAuthError, match="SRTCP packet failed authentication"):
        receiver.unprotect_rtcp(bytes(protected))


def test_replayed_packet_is_a_replay_error() -> None:
    crypto = CryptoAttribute.generate()
    receiver = SrtpReceiver(crypto)
    sender = pylibsrtp_sender(crypto)
    first = sender.protect(rtp(100))
    assert receiver.unprotect(first) == rtp(100)
    with pytest.raises(SrtpReplayError) as info:
        receiver.unprotect(first)
    assert str(info.value) == "SRTP packet is a replay (replay check failed (bad index))"
    assert isinstance(info.value, SrtpError) and not isinstance(info.value, SrtpAuthError)


def test_garbage_and_oversized_input_raise_only_srtp_errors() -> None:
    receiver = SrtpReceiver(CryptoAttribute.generate())
    for data in (b"", b"\x80", bytes(11), bytes(1600), b"\xff" * 40):
        with pytest.raises(SrtpError):
            receiver.unprotect(data)
        with pytest.raises(SrtpError):
            receiver.unprotect_rtcp(data)


def test_our_sender_round_trip() -> None:
    crypto = CryptoAttribute.generate(3, "AES_CM_128_HMAC_SHA1_32")
    sender = SrtpSender(crypto)
    receiver = SrtpReceiver(crypto)
    assert receiver.unprotect(sender.protect(rtp(7))) == rtp(7)
    with pytest.raises(SrtpError, match=r"^RTP packet refused by libsrtp: packet is too long$"):
        sender.protect(bytes(1600))
