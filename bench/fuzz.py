"""Time-boxed mutation fuzzing of sipscribe's parsers.

    python bench/fuzz.py --target sip --seconds 60
    python bench/fuzz.py --target all --seconds 30 --seed 1 --crash-dir /tmp/crashes

A *target* is a function taking arbitrary bytes that returns normally when the
input was handled — accepted, or rejected with the parser's own error type —
and raises anything else (including a failed consistency assertion) on a bug.
Targets register in :data:`TARGETS` with a seed corpus; the driver mutates
seeds (flips, insertions, deletions, duplications, splices and a dictionary of
protocol tokens) until the time is up and reports the distinct crashes.

Other layers add their targets with :func:`register` (or by listing modules in
:data:`OPTIONAL_TARGET_MODULES` whose ``TARGETS`` dict maps names to
``Callable[[bytes], None]``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import pathlib
import random
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

ROOT = pathlib.Path(__file__).resolve().parent.parent
if __name__ == "__main__":  # run as a script: make `bench` and `sipscribe` importable
    sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from sipscribe.sip.endpoint import SipEndpoint  # noqa: E402
from sipscribe.sip.errors import SipParseError  # noqa: E402
from sipscribe.sip.framing import StreamFramer  # noqa: E402
from sipscribe.sip.message import ParseLimits, parse_message  # noqa: E402

__all__ = ["TARGETS", "FuzzReport", "FuzzTarget", "fuzz", "fuzz_sip_message", "main", "register"]

#: Modules whose ``TARGETS: dict[str, Callable[[bytes], None]]`` join the registry if importable.
OPTIONAL_TARGET_MODULES = ("bench.fuzz_targets_siprec",)

#: Tokens worth splicing into SIP-ish input.
SIP_DICTIONARY = [
    b"\r\n", b"\r\n\r\n", b"\r\n ", b";", b",", b'"', b"\\", b"<", b">", b":", b"=", b"%",
    b"%00", b"@", b"[", b"]", b"?", b"&", b"*", b" ", b"\t", b"\x00", b"\xff", b"SIP/2.0",
    b"sip:", b"sips:", b"tel:", b"z9hG4bK", b"Via: SIP/2.0/UDP ", b"Content-Length: ",
    b"l: ", b"CSeq: ", b"To: ", b"From: ", b"Contact: *", b";tag=", b";branch=", b";rport",
    b";received=", b"4294967296", b"99999999999999999999", b"-1", b"0", b"[::1]",
    b"Session-Expires: ", b"Min-SE: ", b"Require: ", b"INVITE", b"ACK", b"CANCEL",
]  # fmt: skip


@dataclass
class FuzzTarget:
    """One fuzzable entry point and where its seed inputs come from."""

    name: str
    run_one: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]] = lambda: [b""]
    dictionary: list[bytes] = field(default_factory=list)


@dataclass
class FuzzReport:
    """What a fuzzing run found; `crashes` maps a crash signature to one input."""

    target: str
    seconds: float
    executions: int = 0
    crashes: dict[str, bytes] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.crashes

    def summary(self) -> str:
        rate = self.executions / self.seconds if self.seconds else 0.0
        lines = [
            f"{self.target}: {self.executions} inputs in {self.seconds:.1f} s "
            f"({rate:.0f}/s), {len(self.crashes)} distinct crash(es)"
        ]
        for signature, data in self.crashes.items():
            lines.append(f"  {signature}\n    input: {data[:200]!r}")
        return "\n".join(lines)


TARGETS: dict[str, FuzzTarget] = {}


def register(
    name: str,
    *,
    seeds: Callable[[], list[bytes]] | None = None,
    dictionary: list[bytes] | None = None,
) -> Callable[[Callable[[bytes], None]], Callable[[bytes], None]]:
    """Decorator adding a target to :data:`TARGETS`."""

    def decorate(run_one: Callable[[bytes], None]) -> Callable[[bytes], None]:
        TARGETS[name] = FuzzTarget(name, run_one, seeds or (lambda: [b""]), dictionary or [])
        return run_one

    return decorate


# --- the driver -------------------------------------------------------------------------


def mutate(rng: random.Random, data: bytes, pool: list[bytes], dictionary: list[bytes]) -> bytes:
    """Apply 1-8 random edits, AFL-style, to `data`."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        pos = rng.randint(0, len(out))
        kind = rng.randrange(7)
        if kind == 0 and out:
            out[min(pos, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif kind == 1 and out:
            out[min(pos, len(out) - 1)] = rng.randrange(256)
        elif kind == 2:
            out[pos:pos] = rng.randbytes(rng.randint(1, 16))
        elif kind == 3:
            del out[pos : pos + rng.randint(1, 32)]
        elif kind == 4:
            out[pos:pos] = out[pos : pos + rng.randint(1, 64)]
        elif kind == 5 and dictionary:
            out[pos:pos] = rng.choice(dictionary)
        else:  # splice with another seed
            other = rng.choice(pool)
            start = rng.randint(0, len(other))
            out[pos:] = other[start:]
    return bytes(out)


def _signature(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "?"
    return f"{type(exc).__name__} at {where}: {str(exc)[:120]}"


def fuzz(
    target_name: str,
    seconds: float,
    *,
    seed: int | None = None,
    max_inputs: int | None = None,
) -> FuzzReport:
    """Run one target for `seconds` (or `max_inputs` inputs) and report crashes."""
    target = TARGETS[target_name]
    rng = random.Random(seed)
    pool = [s for s in target.seeds() if s is not None] or [b""]
    report = FuzzReport(target_name, 0.0)
    started = time.monotonic()
    deadline = started + seconds
    inputs = list(pool)  # every seed runs unmutated first
    while time.monotonic() < deadline:
        if max_inputs is not None and report.executions >= max_inputs:
            break
        if inputs:
            data = inputs.pop()
        elif rng.random() < 0.05:
            data = rng.randbytes(rng.randint(0, 512))
        else:
            data = mutate(rng, rng.choice(pool), pool, target.dictionary)
        report.executions += 1
        try:
            target.run_one(data)
        except Exception as exc:
            report.crashes.setdefault(_signature(exc), data)
    report.seconds = time.monotonic() - started
    return report


# --- SIP target ------------------------------------------------------------------------------

_SIP_LIMITS = ParseLimits(max_message_size=8192, max_headers=64, max_line_length=2048)


def _sip_seeds() -> list[bytes]:
    corpus = sorted((ROOT / "tests" / "data" / "sip").glob("*.sip"))
    return [path.read_bytes() for path in corpus]


@register("sip", seeds=_sip_seeds, dictionary=SIP_DICTIONARY)
def run_sip_message(data: bytes) -> None:
    """Datagram and stream parsing, framing, and an endpoint fed the bytes.

    Beyond "only SipParseError": an accepted message must serialise to bytes
    that parse back to bytes identical to themselves.
    """
    for stream in (False, True):
        try:
            message = parse_message(data, limits=_SIP_LIMITS, stream=stream)
        except SipParseError:
            continue
        once = bytes(message)
        assert bytes(parse_message(once, limits=_SIP_LIMITS)) == once, "round trip drifted"
    framer = StreamFramer(limits=_SIP_LIMITS)
    for i in range(0, len(data), 97):
        framer.feed(data[i : i + 97])
    try:
        while (item := framer.next_item()) is not None:
            if isinstance(item, bytes):
                with contextlib.suppress(SipParseError):
                    parse_message(item, limits=_SIP_LIMITS, stream=True)
    except SipParseError:
        pass
    endpoint = SipEndpoint(token_factory=lambda: "fz")
    endpoint.receive_datagram(data, ("192.0.2.1", 5060), 0.0)
    endpoint.handle_timer(100.0)


def fuzz_sip_message(seconds: float, *, seed: int | None = None) -> FuzzReport:
    """Fuzz the SIP message parser, framer and endpoint input path for `seconds`."""
    return fuzz("sip", seconds, seed=seed)


# --- SIPREC targets (bench/fuzz_targets_siprec.py): seeds from the vendor INVITE fixtures ---

SDP_DICTIONARY = [
    b"\r\n", b"\n", b"v=0", b"o=- 1 1 IN IP4 ", b"s=-", b"c=IN IP4 ", b"c=IN IP6 ", b"t=0 0",
    b"m=audio ", b"m=video ", b" RTP/AVP ", b" RTP/SAVP ", b" UDP/TLS/RTP/SAVPF ", b"a=rtpmap:",
    b"a=fmtp:", b"a=label:", b"a=sendonly", b"a=recvonly", b"a=inactive", b"a=sendrecv",
    b"a=rtcp:", b"a=rtcp-mux", b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:", b"a=ptime:",
    b"PCMU/8000", b"PCMA/8000", b"opus/48000/2", b"telephone-event/8000", b"G722/8000",
    b"/", b" ", b":", b"0", b"65535", b"65536", b"-1", b"4294967296", b"::1", b"0.0.0.0",
]  # fmt: skip
METADATA_DICTIONARY = [
    b"<recording xmlns='urn:ietf:params:xml:ns:recording:1'>", b"</recording>",
    b"<datamode>complete</datamode>", b"<datamode>partial</datamode>", b"<session ",
    b"session_id=", b"participant_id=", b"stream_id=", b"<participant ", b"</participant>",
    b"<stream ", b"</stream>", b"<label>", b"</label>", b"<nameID aor=", b"<name>", b"<send>",
    b"<recv>", b"<participantstreamassoc ", b"<associate-time>", b"<disassociate-time>",
    b"<sipSessionID>", b"<group ", b"<extensiondata ", b"xmlns:apkt=", b"<!DOCTYPE x [",
    b"<!ENTITY e 'x'>", b"&e;", b"&amp;", b"<![CDATA[", b"]]>", b"<?xml version='1.0'?>",
    b"=\"", b"\"", b"'", b"<", b">", b"/>", b"c2Vzc2lvbi0x", b"====", b"\x00", b"\xff",
]  # fmt: skip
MULTIPART_DICTIONARY = [
    b"\r\n", b"\n", b"--", b"--\r\n", b"multipart/mixed;boundary=", b"boundary=\"", b"\"",
    b"Content-Type: application/sdp\r\n", b"Content-Type: application/rs-metadata+xml\r\n",
    b"Content-Disposition: recording-session\r\n", b"Content-Transfer-Encoding: base64\r\n",
    b"Content-ID: <x>\r\n", b";", b"=", b" ", b"\t", b"application/sdp", b"\x00",
]  # fmt: skip


def _siprec_invites() -> list[tuple[str, bytes]]:
    """(Content-Type, body) of every SIPREC INVITE fixture and sipp scenario's INVITE."""
    out: list[tuple[str, bytes]] = []
    files = sorted((ROOT / "tests" / "data" / "siprec").glob("*.txt"))
    files.append(ROOT / "tests" / "data" / "sip" / "opensips-3.6-siprec-invite.txt")
    for path in files:
        if not path.exists():
            continue
        head, _, body = path.read_bytes().partition(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() in (b"content-type", b"c"):
                out.append((value.strip().decode("latin-1"), body))
                break
    return out


def _siprec_parts() -> list[tuple[bytes, bytes | None]]:
    """(SDP, metadata) of each fixture, as the multipart parser splits them."""
    from sipscribe.siprec.multipart import MultipartError, parse_recording_body

    out: list[tuple[bytes, bytes | None]] = []
    for content_type, body in _siprec_invites():
        try:
            parsed = parse_recording_body(body, content_type)
        except MultipartError:
            continue
        out.append((parsed.sdp, parsed.metadata))
    return out


def _sdp_seeds() -> list[bytes]:
    return [sdp for sdp, _ in _siprec_parts()]


def _metadata_seeds() -> list[bytes]:
    return [meta for _, meta in _siprec_parts() if meta]


def _multipart_seeds() -> list[bytes]:
    # fuzz_multipart's input: the Content-Type value, a newline, the body
    return [ct.encode("latin-1") + b"\n" + body for ct, body in _siprec_invites()]


#: Seeds and dictionaries for targets that modules in OPTIONAL_TARGET_MODULES provide.
OPTIONAL_TARGET_INPUTS: dict[str, tuple[Callable[[], list[bytes]], list[bytes]]] = {
    "sdp": (_sdp_seeds, SDP_DICTIONARY),
    "metadata": (_metadata_seeds, METADATA_DICTIONARY),
    "multipart": (_multipart_seeds, MULTIPART_DICTIONARY),
}


def _load_optional_targets() -> None:
    for module_name in OPTIONAL_TARGET_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            print(f"fuzz: optional targets {module_name} not loaded: {exc}", file=sys.stderr)
            continue
        for name, run_one in getattr(module, "TARGETS", {}).items():
            seeds, dictionary = OPTIONAL_TARGET_INPUTS.get(name, (lambda: [b""], []))
            TARGETS.setdefault(name, FuzzTarget(name, run_one, seeds, dictionary))


def main(argv: list[str] | None = None) -> int:
    _load_optional_targets()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, choices=[*sorted(TARGETS), "all"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--crash-dir", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    names = sorted(TARGETS) if args.target == "all" else [args.target]
    failed = False
    for name in names:
        report = fuzz(name, args.seconds / len(names), seed=args.seed)
        print(report.summary())
        if args.crash_dir is not None:
            args.crash_dir.mkdir(parents=True, exist_ok=True)
            for i, data in enumerate(report.crashes.values()):
                (args.crash_dir / f"{name}-{i}.bin").write_bytes(data)
        failed |= not report.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
