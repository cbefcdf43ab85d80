"""SRTP keyed by SDP Security Descriptions (SDES, RFC 4568), on top of libsrtp (pylibsrtp).

SIPREC clients that encrypt media put ``a=crypto`` lines in the offer; `CryptoAttribute` reads
one (``CryptoAttribute.parse("1 AES_CM_128_HMAC_SHA1_80 inline:KEY|2^20")``), checks the key
length for its suite, and writes it back with ``str()``. `CryptoAttribute.generate` makes our
own for the answer. `SrtpReceiver` unprotects what the client sends with its key; `SrtpSender`
protects with ours.

Failures are sorted for the caller, which counts and drops: `SrtpAuthError` (tag did not verify:
tampering, wrong key, garbage), `SrtpReplayError` (an index libsrtp has already accepted, RFC
3711 §3.3.2), `SrtpError` for the rest. MKI (RFC 4568 §6.1) is parsed but refused by the
receiver: pylibsrtp cannot configure it, and SIPREC clients do not use it.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass

import pylibsrtp

from .errors import CryptoAttributeError, SrtpAuthError, SrtpError, SrtpReplayError

__all__ = [
    "SUITES",
    "CryptoAttribute",
    "CryptoAttributeError",
    "SrtpAuthError",
    "SrtpError",
    "SrtpReceiver",
    "SrtpReplayError",
    "SrtpSender",
]


@dataclass(frozen=True, slots=True)
class _Suite:
    profile: int  # pylibsrtp.Policy.SRTP_PROFILE_*
    key_length: int  # master key + master salt, bytes


#: Crypto suites we key: RFC 4568 §6.2 (AES-CM) and RFC 7714 §12 (AES-GCM).
SUITES: dict[str, _Suite] = {
    "AES_CM_128_HMAC_SHA1_80": _Suite(pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 30),
    "AES_CM_128_HMAC_SHA1_32": _Suite(pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32, 30),
    "AEAD_AES_128_GCM": _Suite(pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 28),
    "AEAD_AES_256_GCM": _Suite(pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM, 44),
}

# RFC 4568 §9.1: tag = 1*9DIGIT; key-info = key-salt ["|" lifetime] ["|" mki]
_TAG = re.compile(r"[0-9]{1,9}")
_LIFETIME = re.compile(r"(?:2\^([0-9]{1,2})|([0-9]{1,15}))")
_MKI = re.compile(r"([0-9]{1,20}):([0-9]{1,3})")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
# Session parameters whose effect libsrtp cannot give us through pylibsrtp (§6.3).
_UNSUPPORTED_PARAMS = ("UNENCRYPTED_SRTP", "UNENCRYPTED_SRTCP", "UNAUTHENTICATED_SRTP", "FEC_")


@dataclass(frozen=True, slots=True)
class CryptoAttribute:
    """An SDP ``a=crypto`` attribute with one inline key (RFC 4568 §4, §6.1)."""

    tag: int
    suite: str
    key: bytes  # master key followed by master salt
    lifetime: int | None = None  # packets, from "|2^20" or "|1048576"
    mki: tuple[int, int] | None = None  # (value, length in bytes), from "|1:4"
    session_params: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.tag <= 999_999_999:
            raise CryptoAttributeError(f"crypto attribute tag {self.tag} is out of range")
        suite = SUITES.get(self.suite)
        if suite is None:
            raise CryptoAttributeError(f"crypto suite {self.suite} is not supported")
        if len(self.key) != suite.key_length:
            raise CryptoAttributeError(
                f"crypto attribute key for {self.suite} is {len(self.key)} bytes,"
                f" expected {suite.key_length}"
            )

    @classmethod
    def parse(cls, text: str) -> CryptoAttribute:
        """Read the attribute value, with or without the ``a=crypto:`` prefix."""
        value = text.strip()
        for prefix in ("a=crypto:", "crypto:"):
            if value.lower().startswith(prefix):
                value = value[len(prefix) :]
                break
        fields = value.split()
        if len(fields) < 3:
            raise CryptoAttributeError("crypto attribute needs a tag, a suite and key params")
        tag_text, suite, key_params, *session_params = fields
        if not _TAG.fullmatch(tag_text):
            raise CryptoAttributeError(f"crypto attribute tag {tag_text!r} is not 1-9 digits")
        if ";" in key_params:
            raise CryptoAttributeError("crypto attribute with several keys is not supported")
        method, sep, key_info = key_params.partition(":")
        if not sep or method.lower() != "inline":
            raise CryptoAttributeError(f"crypto key method {method!r} is not inline")
        key_salt, *extras = key_info.split("|")
        if len(extras) > 2:
            raise CryptoAttributeError("crypto attribute key params have too many fields")
        key = _decode_key(key_salt)
        lifetime = None
        mki = None
        for extra in extras:
            if (match := _MKI.fullmatch(extra)) and mki is None:
                mki = (int(match[1]), int(match[2]))
                if not 1 <= mki[1] <= 128:
                    raise CryptoAttributeError(f"crypto attribute MKI length {mki[1]} is invalid")
            elif (match := _LIFETIME.fullmatch(extra)) and lifetime is None and mki is None:
                lifetime = 1 << int(match[1]) if match[1] else int(match[2])
            else:
                raise CryptoAttributeError(f"crypto attribute key parameter {extra!r} is invalid")
        return cls(int(tag_text), suite, key, lifetime, mki, tuple(session_params))

    @classmethod
    def generate(cls, tag: int = 1, suite: str = "AES_CM_128_HMAC_SHA1_80") -> CryptoAttribute:
        """A fresh random key for our side of the offer/answer (RFC 4568 §7.1.2)."""
        spec = SUITES.get(suite)
        if spec is None:
            raise CryptoAttributeError(f"crypto suite {suite} is not supported")
        return cls(tag, suite, secrets.token_bytes(spec.key_length))

    @property
    def srtp_profile(self) -> int:
        """The pylibsrtp profile constant for this suite."""
        return SUITES[self.suite].profile

    @property
    def window_size(self) -> int | None:
        """The replay window hint from a ``WSH=`` session parameter, if any (§6.3.7)."""
        for param in self.session_params:
            if param.upper().startswith("WSH="):
                try:
                    return int(param[4:])
                except ValueError:
                    raise CryptoAttributeError(
                        f"crypto session parameter {param!r} is invalid"
                    ) from None
        return None

    def __str__(self) -> str:
        key_info = base64.b64encode(self.key).decode("ascii")
        if self.lifetime is not None:
            lifetime = self.lifetime
            if lifetime & (lifetime - 1) == 0 and lifetime > 0:
                key_info += f"|2^{lifetime.bit_length() - 1}"
            else:
                key_info += f"|{lifetime}"
        if self.mki is not None:
            key_info += f"|{self.mki[0]}:{self.mki[1]}"
        return " ".join([str(self.tag), self.suite, f"inline:{key_info}", *self.session_params])


def _decode_key(text: str) -> bytes:
    if not _BASE64.fullmatch(text):
        raise CryptoAttributeError("crypto attribute key is not base64")
    try:
        # Some clients drop the "=" padding; put it back before strict decoding.
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise CryptoAttributeError("crypto attribute key is not base64") from None


def _policy(crypto: CryptoAttribute, ssrc_type: int) -> pylibsrtp.Policy:
    if crypto.mki is not None:
        raise CryptoAttributeError("crypto attribute with MKI is not supported")
    for param in crypto.session_params:
        if param.upper().startswith(_UNSUPPORTED_PARAMS):
            raise CryptoAttributeError(f"crypto session parameter {param} is not supported")
        if param.upper().startswith("KDR=") and param[4:] != "0":
            raise CryptoAttributeError(f"crypto session parameter {param} is not supported")
    policy = pylibsrtp.Policy(key=crypto.key, ssrc_type=ssrc_type, srtp_profile=crypto.srtp_profile)
    window = crypto.window_size
    if window is not None:
        # libsrtp accepts replay windows of 64 to 32768 packets.
        policy.window_size = min(max(window, 64), 0x8000)
    return policy


def _refused(what: str, exc: Exception) -> SrtpError:
    reason = str(exc)
    if reason == "authentication failure":
        return SrtpAuthError(f"{what} failed authentication")
    if reason.startswith("replay check failed"):
        return SrtpReplayError(f"{what} is a replay ({reason})")
    return SrtpError(f"{what} refused by libsrtp: {reason}")


class SrtpReceiver:
    """Unprotects SRTP and SRTCP from one peer, keyed by the peer's ``a=crypto`` attribute.

    One receiver per media stream; any SSRC is accepted (libsrtp keeps a replay window per
    SSRC). Not thread-safe: pylibsrtp reuses one buffer per session.
    """

    def __init__(self, crypto: CryptoAttribute) -> None:
        self.crypto = crypto
        self._session = pylibsrtp.Session(_policy(crypto, pylibsrtp.Policy.SSRC_ANY_INBOUND))

    def unprotect(self, data: bytes) -> bytes:
        """SRTP → RTP bytes; raises `SrtpAuthError`, `SrtpReplayError` or `SrtpError`."""
        try:
            return self._session.unprotect(bytes(data))
        except (pylibsrtp.Error, ValueError) as exc:
            raise _refused("SRTP packet", exc) from None

    def unprotect_rtcp(self, data: bytes) -> bytes:
        """SRTCP → RTCP bytes; raises `SrtpAuthError`, `SrtpReplayError` or `SrtpError`."""
        try:
            return self._session.unprotect_rtcp(bytes(data))
        except (pylibsrtp.Error, ValueError) as exc:
            raise _refused("SRTCP packet", exc) from None


class SrtpSender:
    """Protects RTP and RTCP we send, keyed by our own ``a=crypto`` attribute."""

    def __init__(self, crypto: CryptoAttribute) -> None:
        self.crypto = crypto
        self._session = pylibsrtp.Session(_policy(crypto, pylibsrtp.Policy.SSRC_ANY_OUTBOUND))

    def protect(self, data: bytes) -> bytes:
        """RTP → SRTP bytes; raises `SrtpError` (e.g. a packet too long for libsrtp)."""
        try:
            return self._session.protect(bytes(data))
        except (pylibsrtp.Error, ValueError) as exc:
            raise _refused("RTP packet", exc) from None

    def protect_rtcp(self, data: bytes) -> bytes:
        """RTCP → SRTCP bytes; raises `SrtpError`."""
        try:
            return self._session.protect_rtcp(bytes(data))
        except (pylibsrtp.Error, ValueError) as exc:
            raise _refused("RTCP packet", exc) from None
