"""SIP/SIPREC load: call set-up rate, concurrent sessions and memory of the recording server.

    .venv/bin/python bench/sip_load.py                 # every phase, ~7 min
    .venv/bin/python bench/sip_load.py --quick         # the same phases, scaled down, ~80 s
    .venv/bin/python bench/sip_load.py --phases rate --rates 100,200,400
    .venv/bin/python bench/sip_load.py --server full   # the whole ``Server`` (store, API)
    .venv/bin/python bench/sip_load.py --src /tmp/patched/src --json ...  # A/B a patch
    .venv/bin/python bench/sip_load.py --phases conc --profile /tmp/prof   # cProfile server
    .venv/bin/python bench/sip_load.py --phases conc --gc-tuning off       # CPython's gc

What is measured: signalling and media, **no speech recognition**. sipp (Debian
``sip-tester``) is the recording client (SRC): short SIPREC calls, a multipart INVITE with
two labelled ``sendonly`` m-lines and rs-metadata, ACK, a pause of ``-d`` ms, BYE
(``tests/data/sipp/load_siprec.xml``). The server runs in its own process (this file with
``--serve``) so sipp, the bench driver and the server do not share an interpreter:

* ``--server media`` (the default) builds exactly the receiving path of ``app.py``, minus
  ASR, store and HTTP: ``SipTransport`` + ``SipEndpoint`` → ``Recorder`` (admission,
  SIPREC validation, RTP port pairs bound per m-line, SDP answer) → ``CallPipeline`` with
  ``PipelineContext(pool=None)`` (media-only: decode and count, no VAD/ASR) on an
  ``EventBus`` whose one subscriber counts the events, as the store would consume them.
* ``--server full`` runs ``sipscribe.app.Server`` with ``NullEngine``, an engine defined
  here for this benchmark only that recognises nothing, so the store (SQLite), redaction
  and HTTP API run too; no audio reaches an engine anyway unless ``rtp`` sends speech.

Phases (each on a fresh server process):

``soak``   N calls (10,000) at ``--rate`` calls/s, 1 s each; server RSS after 1,000, 2,000,
           5,000 and N completed calls, and drift against 2,000. Completed transactions
           stay 32 s (UDP Timer J for the BYE, RFC 6026 Timer L for the INVITE 2xx), so
           the working set fills for the first ~40 s (4,000 calls at 100/s): flatness is
           judged after the first mark past that ("steady mark"). Afterwards the bench
           waits for the transactions to expire and counts the Python objects left
           against the idle server: a leak shows there, whatever RSS the allocator keeps.
``conc``   ramp at ``--rate`` to ``--concurrent`` (1,000) simultaneous calls held 15 s
           (sipp ``-l`` caps them); memory per concurrent call = (RSS at the peak − idle
           RSS after a warm-up) / peak calls.
``rate``   one run per rate of ``--rates`` (calls of 1 s, 15 s of arrivals each); the
           sustained rate is the highest with zero failed calls and ≥ 95 % of the
           attempted rate reached. Stops after the first failing rate.
``rtp``    calls with RTP: sipp's ``rtp_stream`` plays a PCMU WAV (written here) to the
           first answered m-line (sipp only feeds the first one) for the whole call
           (``load_siprec_rtp.xml``); the server's per-stream audio counts check it arrived.

Failures are sipp's ``FailedCall`` count (a call that got no 200 to its INVITE or BYE
within ``-recv_timeout``, or an unexpected answer); the server's own rejections (503 at
capacity, 482, ...) are reported beside it. INVITE and BYE response times come from
sipp's ``-trace_rtt`` (every call's INVITE→200 and BYE→200), retransmissions from its
``-trace_stat``. CPU: server and sipp from ``getrusage``; ``others`` is the machine's busy
time (``/proc/stat``) that neither used: the 2 cores are shared with other programs.

The server process also reports its event-loop lag (every wake-up of a 10 ms ticker:
p50/p99/max per run) and every garbage-collector pause by generation
(``sipscribe.gctune.GcPauseWatch``, i.e. ``gc.callbacks``). ``--gc-tuning on`` (the
default, as in the server) applies ``sipscribe.gctune.tune_gc`` after start-up (collect,
``gc.freeze()``, ``GC_THRESHOLDS`` or ``--gc-threshold``); ``off`` keeps CPython's
defaults. The ``conc`` phase counts the collector's tracked objects once at the peak (late, when
completed transactions have piled up too).

The per-source INVITE rate limit (``sip_rate_per_source``, default 200/s with a burst of
400) would answer one sipp above 200 calls/s with 503s; the bench raises it, and
``max_sessions``, and uses RTP ports ``--ports`` (default 20000-29999: 5,000 pairs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import gc
import json
import os
import platform
import re
import resource
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__":  # run as a script: make `sipscribe` importable
    sys.path[:0] = [str(ROOT / "src")]

import numpy as np  # noqa: E402

SIPP = shutil.which("sipp")
SCENARIOS = ROOT / "tests" / "data" / "sipp"
DEFAULT_JSON = ROOT / "bench" / "results" / "sip_load.json"
DEFAULT_RATES = (50.0, 100.0, 150.0, 200.0, 300.0, 400.0)


# ==========================================================================================
# The server process
# ==========================================================================================


class NullEngine:
    """FOR THIS BENCHMARK ONLY: an ASR engine that recognises nothing, instantly.

    ``Server.start`` always builds an ``AsrPool``; this lets ``--server full`` run the
    whole server without a model, because the bench measures signalling and media.
    """

    name = "null"

    def transcribe(self, audio: Any, *, language: str | None = None) -> Any:
        from sipscribe.asr.base import Transcript

        return Transcript(text="", language=language)

    def transcribe_many(self, audios: Sequence[Any], *, language: str | None = None) -> list[Any]:
        return [self.transcribe(a, language=language) for a in audios]


@dataclass
class _Counts:
    """What the bench's bus subscriber saw; label = the m-line label of the stream."""

    started: int = 0
    ended: int = 0
    streams_stopped: int = 0
    audio_ms: dict[str, list[int]] = field(default_factory=dict)


def _proc_status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS/VmHWM/VmSize in KiB and the thread count from /proc/<pid>/status."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "VmSize", "Threads"):
            out[key] = int(value.split()[0])
    return out


async def _serve(cfg: dict[str, Any]) -> None:
    """Run a recording server; answer one JSON line of stats per stdin line."""
    if cfg.get("src"):  # measure another source tree (e.g. a patched copy) against this one
        sys.path.insert(0, cfg["src"])
    from sipscribe.pipeline.bus import EventBus
    from sipscribe.pipeline.events import CallEnded, CallStarted, StreamStopped

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 4 sockets per 2-stream call
    loop = asyncio.get_running_loop()
    server: Any = None
    transport: Any = None
    if cfg["log_level"] != "OFF":
        from sipscribe import logs

        logs.configure(cfg["log_level"], "json")  # as `sipscribe serve` does; to a file
    if cfg["mode"] == "full":
        from sipscribe.app import Server
        from sipscribe.config import load_settings

        settings = load_settings(
            data_dir=Path(cfg["data_dir"]),
            http_port=0,
            sip_port=0,
            sip_host="127.0.0.1",
            rtp_host="127.0.0.1",
            rtp_port_min=cfg["rtp_min"],
            rtp_port_max=cfg["rtp_max"],
            max_sessions=cfg["max_sessions"],
            sip_rate_per_source=cfg["rate_per_source"],
            gc_tuning=cfg["gc_tuning"],
            log_level=cfg["log_level"] if cfg["log_level"] != "OFF" else "ERROR",
        )
        server = Server(settings)
        await server.start(engine=NullEngine())
        recorder = server.recorder
        bus = server.buses[1]  # the public bus, where the store listens
        sip_port = server.sip_port
    else:
        from sipscribe.media.ports import PortAllocator
        from sipscribe.pipeline.call import PipelineContext
        from sipscribe.recorder import Admission, Recorder
        from sipscribe.sip.endpoint import EndpointConfig, SipEndpoint
        from sipscribe.sip.transport import SipTransport

        bus = EventBus()
        endpoint = SipEndpoint(EndpointConfig(host="127.0.0.1", port=0))
        recorder = Recorder(
            endpoint=endpoint,
            ctx=PipelineContext(pool=None, bus=bus),
            allocator=PortAllocator(cfg["rtp_min"], cfg["rtp_max"]),
            admission=Admission(
                max_sessions=cfg["max_sessions"], per_source_rate=cfg["rate_per_source"]
            ),
            media_host="127.0.0.1",
        )
        transport = SipTransport(endpoint, recorder.on_event)
        await transport.listen("127.0.0.1", 0)
        recorder.pump = transport.pump
        sip_port = transport.udp_port

    counts = _Counts()

    async def count(sub: Any) -> None:
        async for event in sub:
            if isinstance(event, CallStarted):
                counts.started += 1
            elif isinstance(event, CallEnded):
                counts.ended += 1
            elif isinstance(event, StreamStopped):
                counts.streams_stopped += 1
                label = event.stream_id.rpartition(":")[2]
                counts.audio_ms.setdefault(label, []).append(int(event.stats["audio_ms"]))

    counter = asyncio.create_task(count(bus.subscribe("bench-counter", reliable=True)))
    lag: dict[str, Any] = {"max": 0.0, "skip": False}
    lags: list[float] = []  # ms, every tick since the last stats

    async def lag_probe() -> None:  # how late a 10 ms ticker wakes: the loop's backlog
        while True:
            t = loop.time()
            await asyncio.sleep(0.01)
            late = loop.time() - t - 0.01
            if lag["skip"]:  # the bench's own object count stalled this tick
                lag["skip"] = False
                continue
            lag["max"] = max(lag["max"], late)
            lags.append(round(late * 1000, 2))

    prober = asyncio.create_task(lag_probe())
    gc_pause: dict[str, Any] = {"max": 0.0, "total": 0.0, "gen2": 0, "own": False}
    pauses: list[list[float]] = [[], [], []]  # ms per generation since the last stats

    def on_gc(gen: int, took: float) -> None:  # the collector's pauses, not the bench's own
        if gc_pause["own"]:
            return
        gc_pause["max"] = max(gc_pause["max"], took)
        gc_pause["total"] += took
        gc_pause["gen2"] += gen == 2
        pauses[gen].append(round(took * 1000, 3))

    from sipscribe.gctune import GcPauseWatch

    GcPauseWatch(on_gc).start()
    collected = [0, 0, 0]  # unreachable objects (cyclic garbage) found, per generation

    def on_gc_collected(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and not gc_pause["own"]:
            collected[info["generation"]] += info["collected"]

    gc.callbacks.append(on_gc_collected)

    def stats(deep: bool, objects: bool = False) -> dict[str, Any]:
        endpoint = recorder.endpoint
        out: dict[str, Any] = {
            "t": time.monotonic(),
            "active": len(recorder.calls),
            "setting_up": len(getattr(recorder, "_setting_up", {})),
            "started": counts.started,
            "ended": counts.ended,
            "streams_stopped": counts.streams_stopped,
            "rejected": {str(k): v for k, v in recorder.rejected.items()},
            "parse_failures": recorder.parse_failures,
            "ports_in_use": recorder.allocator.in_use,
            "sip_server_tx": len(getattr(endpoint, "_server", {})),
            "sip_client_tx": len(getattr(endpoint, "_client", {})),
            "sip_dialogs": len(getattr(endpoint, "_dialogs", {})),
            "sip_merged": len(getattr(endpoint, "_merged", {})),
            "tasks": len(asyncio.all_tasks()),
            "loop_lag_max_ms": round(lag["max"] * 1000, 1),
            "gc_pause_max_ms": round(gc_pause["max"] * 1000, 1),
            "gc_total_s": round(gc_pause["total"], 3),
            "gc_gen2": gc_pause["gen2"],
            "gc_pauses_ms": [list(p) for p in pauses],
            "gc_collected": list(collected),
            "lag_ms": list(lags),
            "gc_frozen": gc.get_freeze_count(),
            "gc_threshold": list(gc.get_threshold()),
            "cpu_s": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
            **{k.lower(): v for k, v in _proc_status().items()},
        }
        lag["max"] = 0.0
        lags.clear()
        gc_pause["max"] = 0.0
        for p in pauses:
            p.clear()
        if objects:  # tracked objects, without collecting (a forced collection would reset
            # the collector's counters and so move its next full collection): not counted
            out["gc_tracked"] = [len(gc.get_objects(generation=g)) for g in range(3)]
            kinds = Counter(type(o).__name__ for o in gc.get_objects())
            out["gc_top_types"] = kinds.most_common(12)
            lag["skip"] = True
        if deep:  # our own full collection is not the server's pause: not counted
            gc_pause["own"] = True
            gc.collect()
            gc_pause["own"] = False
            lag["skip"] = True
            out["gc_objects"] = len(gc.get_objects())
            out["vmrss_after_gc"] = _proc_status()["VmRSS"]
            out["audio_ms"] = {k: _summary(v) for k, v in counts.audio_ms.items()}
        return out

    gc_tuned: dict[str, Any] = {}
    if cfg["mode"] != "full" and cfg["gc_tuning"]:  # Server.start does it in "full" mode
        from types import SimpleNamespace

        from sipscribe.gctune import GC_THRESHOLDS, tune_gc

        a, b, c = cfg["gc_threshold"] or GC_THRESHOLDS
        tuning = tune_gc(SimpleNamespace(gc_tuning=True), thresholds=(a, b, c))
        gc_tuned = {"frozen": tuning.frozen, "took_ms": round(tuning.took_s * 1000, 1)}
    profiler = None
    if cfg.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    import sipscribe

    hello = {
        "ready": True,
        "sip_port": sip_port,
        "pid": os.getpid(),
        "src": sipscribe.__file__,
        "gc_threshold": list(gc.get_threshold()),
        "gc_frozen": gc.get_freeze_count(),
        **gc_tuned,
    }
    print(json.dumps(hello), flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).strip():
        if line == b"stop":
            break
        print(json.dumps(stats(deep=line == b"deep", objects=line == b"objects")), flush=True)

    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(cfg["profile"])
    prober.cancel()
    if server is not None:
        await server.stop(drain_timeout=5)
    else:
        await recorder.drain(5)
        await transport.close()
        await bus.close()
    with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(counter, 10)


def _summary(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    arr = np.asarray(values, dtype=np.float64)
    return {
        "n": int(arr.size),
        "p50": round(float(np.percentile(arr, 50)), 2),
        "p95": round(float(np.percentile(arr, 95)), 2),
        "p99": round(float(np.percentile(arr, 99)), 2),
        "max": round(float(arr.max()), 2),
        "mean": round(float(arr.mean()), 2),
    }


# ==========================================================================================
# The driver
# ==========================================================================================


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine_busy_s() -> float:
    """Seconds of CPU the whole machine spent busy (all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / ticks


class ServerProcess:
    """The recording server in a child process, asked for stats over its stdin/stdout."""

    def __init__(self, workdir: Path, args: argparse.Namespace, name: str) -> None:
        self.workdir = workdir
        self.log_path = workdir / f"server-{name}.log"
        lo, hi = (int(x) for x in args.ports.split("-"))
        cfg = {
            "mode": args.server,
            "rtp_min": lo,
            "rtp_max": hi,
            "max_sessions": args.max_sessions,
            "rate_per_source": 1_000_000.0,
            "data_dir": str(workdir / f"data-{name}"),
            "log_level": args.log_level,
            "src": str(args.src.resolve()) if args.src else None,
            "gc_tuning": args.gc_tuning == "on",
            "gc_threshold": args.gc_threshold,
            "profile": str(args.profile / f"server-{name}.pstats") if args.profile else None,
        }
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-B", str(Path(__file__).resolve()), "--serve", json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=workdir,
        )
        self._lock = threading.Lock()
        hello = self._read(60)
        self.pid = int(hello["pid"])
        self.sip_port = int(hello["sip_port"])
        self.src = str(hello["src"])
        self.hello = hello

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"server process gave no answer in {timeout} s:\n{tail}")
        return dict(json.loads(line))

    def stats(self, deep: bool = False, objects: bool = False) -> dict[str, Any]:
        with self._lock:
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"deep\n" if deep else b"objects\n" if objects else b"stats\n")
            self.proc.stdin.flush()
            return self._read(30)

    def wait_idle(self, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats()
            if st["active"] == 0 and st["setting_up"] == 0 and st["ports_in_use"] == 0:
                return st
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not idle after {timeout} s: {st}")
            time.sleep(0.2)

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"stop\n")
            self.proc.stdin.flush()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


@dataclass
class SippResult:
    """One sipp run, as sipp and the server saw it."""

    name: str
    command: list[str]
    exit_code: int
    target_rate: float
    calls: int
    hold_ms: int
    limit: int
    wall_s: float = 0.0
    created: int = 0
    successful: int = 0
    failed: int = 0
    retransmissions: int = 0
    unexpected: int = 0
    #: calls created / seconds from the first to the last INVITE.
    achieved_rate: float = 0.0
    invite_ms: dict[str, Any] = field(default_factory=dict)
    bye_ms: dict[str, Any] = field(default_factory=dict)
    peak_concurrent: int = 0
    server_cpu_cores: float = 0.0
    sipp_cpu_cores: float = 0.0
    others_cpu_cores: float = 0.0
    server_rejected: dict[str, int] = field(default_factory=dict)
    loop_lag_max_ms: float = 0.0
    #: server CPU per created call (contention-independent, unlike the rates)
    server_cpu_ms_per_call: float = 0.0
    gc_pause_max_ms: float = 0.0
    gc_s: float = 0.0
    #: every 10 ms ticker wake-up's lateness during the run, ms
    loop_lag_ms: dict[str, Any] = field(default_factory=dict)
    #: collector pauses during the run by generation ("0", "1", "2"), ms
    gc_pauses_ms: dict[str, Any] = field(default_factory=dict)
    #: cyclic garbage the collector freed during the run, objects per generation
    gc_collected: list[int] = field(default_factory=list)
    errors_tail: str = ""


class Sampler(threading.Thread):
    """Polls the server every ``period`` s while sipp runs; notes RSS at call-count marks."""

    def __init__(
        self, server: ServerProcess, period: float = 0.5, marks: Sequence[int] = ()
    ) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.period = period
        self.samples: list[dict[str, Any]] = []
        self.marks = sorted(marks)
        self.at_marks: dict[int, dict[str, Any]] = {}
        self.base_ended = 0
        self.lags: list[float] = []
        self.pauses: list[list[float]] = [[], [], []]
        #: count the collector's tracked objects once, when (active, started) calls reach these:
        #: late in the run, when completed transactions (kept 32 s) have piled up too
        self.objects_at: tuple[int, int] | None = None
        self.objects: dict[str, Any] | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.period)

    def _take(self, st: dict[str, Any]) -> dict[str, Any]:
        self.lags.extend(st.pop("lag_ms", ()))
        for gen, values in enumerate(st.pop("gc_pauses_ms", ())):
            self.pauses[gen].extend(values)
        return st

    def sample(self) -> None:
        st = self._take(self.server.stats())
        self.samples.append(st)
        at = self.objects_at
        if at and self.objects is None and st["active"] >= at[0] and st["started"] >= at[1]:
            obj = self._take(self.server.stats(objects=True))
            keys = ("active", "gc_tracked", "gc_top_types")
            self.objects = {k: obj[k] for k in keys}
        done = st["ended"] - self.base_ended
        pending = [m for m in self.marks if m not in self.at_marks and done >= m]
        if pending:  # a deep sample: gc, object count, RSS after gc
            deep = self._take(self.server.stats(deep=True))
            for m in pending:
                self.at_marks[m] = {**deep, "completed": deep["ended"] - self.base_ended}

    def stop(self) -> None:
        self._stop_event.set()
        self.join(30)
        self.sample()  # marks reached after the last periodic sample


def _percentiles(values: list[float]) -> dict[str, Any]:
    return _summary(values)


def parse_rtt(path: Path) -> dict[str, list[float]]:
    """sipp's ``-trace_rtt`` file: ``date_ms;response_time_ms;rtd_no`` per measure."""
    out: dict[str, list[float]] = {}
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        parts = line.strip().split(";")
        if len(parts) < 3 or not re.fullmatch(r"[\d.]+", parts[1]):
            continue
        out.setdefault(parts[2].strip(), []).append(float(parts[1]))
    return out


def parse_stat(path: Path) -> dict[str, str]:
    """The last row of sipp's ``-trace_stat`` CSV (cumulative counters end in ``(C)``)."""
    if not path.exists():
        return {}
    rows = list(csv.DictReader(path.open(errors="replace"), delimiter=";"))
    return dict(rows[-1]) if rows else {}


def _int(row: dict[str, str], key: str) -> int:
    try:
        return int(float(row.get(key, "0") or 0))
    except ValueError:
        return 0


def run_sipp(
    server: ServerProcess,
    workdir: Path,
    name: str,
    scenario: Path,
    *,
    rate: float,
    calls: int,
    hold_ms: int,
    limit: int,
    marks: Sequence[int] = (),
    objects_at: tuple[int, int] | None = None,
) -> tuple[SippResult, Sampler]:
    """Run one sipp load against ``server``; sample the server meanwhile."""
    assert SIPP is not None
    rundir = workdir / name
    rundir.mkdir(parents=True, exist_ok=True)
    if scenario.name.endswith("_rtp.xml"):
        write_pcmu_wav(rundir / "rtp.wav", seconds=2.0)
    expected_s = calls / rate + hold_ms / 1000
    cmd = [
        SIPP,
        f"127.0.0.1:{server.sip_port}",
        "-sf", str(scenario),
        "-i", "127.0.0.1",
        "-p", str(free_port()),
        "-mi", "127.0.0.1",
        "-mp", str(free_port()),
        "-t", "u1",
        "-r", f"{rate:g}",
        "-rp", "1000",
        "-l", str(limit),
        "-m", str(calls),
        "-d", str(hold_ms),
        "-recv_timeout", "10000",
        "-timeout", f"{int(expected_s * 2 + 60)}s",
        "-timeout_error",
        "-nostdin",
        "-trace_stat", "-stf", str(rundir / "stat.csv"), "-fd", "1",
        "-trace_rtt", "-rtt_freq", str(max(1, min(100, calls // 10))),
        "-trace_err", "-error_file", str(rundir / "errors.log"),
        "-trace_screen", "-screen_file", str(rundir / "screen.log"),
        "-max_recv_loops", "10000",
        "-max_sched_loops", "10000",
    ]  # fmt: skip
    sampler = Sampler(server, marks=marks)
    sampler.objects_at = objects_at
    before = server.stats()  # also empties the lag and pause lists
    sampler.base_ended = before["ended"]
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0 = machine_busy_s()
    t0 = time.monotonic()
    sampler.start()
    proc = subprocess.run(
        cmd,
        cwd=rundir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=expected_s * 2 + 120,
        check=False,
    )
    wall = time.monotonic() - t0
    busy = machine_busy_s() - busy0
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    at_end = sampler._take(server.stats())
    server_cpu = at_end["cpu_s"] - before["cpu_s"]
    # let the server end calls whose BYE it answered (or that sipp abandoned), then stop
    with contextlib.suppress(RuntimeError):
        server.wait_idle(30)
    sampler.stop()
    after = server.stats()
    sipp_cpu = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)

    stat = parse_stat(rundir / "stat.csv")
    rtts = {}
    for path in rundir.glob("*_rtt.csv"):
        for key, values in parse_rtt(path).items():
            rtts.setdefault(key, []).extend(values)
    created = _int(stat, "TotalCallCreated")
    elapsed = _elapsed_s(stat.get("ElapsedTime(C)", ""))
    arrivals_s = max(1e-9, min(elapsed or wall, wall) - hold_ms / 1000)
    errors = rundir / "errors.log"
    rejected = {
        k: v - before["rejected"].get(k, 0)
        for k, v in after["rejected"].items()
        if v - before["rejected"].get(k, 0)
    }
    res = SippResult(
        name=name,
        command=cmd,
        exit_code=proc.returncode,
        target_rate=rate,
        calls=calls,
        hold_ms=hold_ms,
        limit=limit,
        wall_s=round(wall, 2),
        created=created,
        successful=_int(stat, "SuccessfulCall(C)"),
        failed=_int(stat, "FailedCall(C)"),
        retransmissions=_int(stat, "Retransmissions(C)"),
        unexpected=_int(stat, "FailedUnexpectedMessage(C)"),
        achieved_rate=round(created / arrivals_s, 1),
        invite_ms=_percentiles(rtts.get("1", [])),
        bye_ms=_percentiles(rtts.get("2", [])),
        peak_concurrent=max((s["active"] for s in sampler.samples), default=0),
        server_cpu_cores=round(server_cpu / wall, 2),
        sipp_cpu_cores=round(sipp_cpu / wall, 2),
        others_cpu_cores=round(max(0.0, busy - server_cpu - sipp_cpu) / wall, 2),
        server_rejected=rejected,
        loop_lag_max_ms=max((s["loop_lag_max_ms"] for s in sampler.samples), default=0.0),
        server_cpu_ms_per_call=round(server_cpu / max(1, created) * 1000, 2),
        gc_pause_max_ms=max((s["gc_pause_max_ms"] for s in sampler.samples), default=0.0),
        gc_s=round(at_end["gc_total_s"] - before["gc_total_s"], 2),
        gc_collected=[
            a - b for a, b in zip(at_end["gc_collected"], before["gc_collected"], strict=True)
        ],
        loop_lag_ms=_summary(sampler.lags),
        gc_pauses_ms={
            str(gen): {**_summary(v), "total_s": round(sum(v) / 1000, 3)}
            for gen, v in enumerate(sampler.pauses)
        },
        errors_tail=(errors.read_text(errors="replace")[-2000:] if errors.exists() else "")
        + proc.stderr.decode(errors="replace")[-1000:],
    )
    return res, sampler


def _elapsed_s(text: str) -> float:
    """sipp's ``HH:MM:SS:mmm...`` elapsed time in seconds (0 if unreadable)."""
    parts = re.findall(r"\d+", text)
    if len(parts) < 3:
        return 0.0
    h, m, s = (int(x) for x in parts[:3])
    frac = int(parts[3]) / 10 ** len(parts[3]) if len(parts) > 3 else 0.0
    return h * 3600 + m * 60 + s + frac


def write_pcmu_wav(path: Path, *, seconds: float) -> None:
    """An 8 kHz mu-law WAV (format tag 7) of a speech-band warble, for sipp's rtp_stream."""
    from sipscribe.media.codecs.g711 import encode_ulaw

    t = np.arange(int(8000 * seconds)) / 8000
    tone = np.sin(2 * np.pi * (300 + 200 * np.sin(2 * np.pi * 3 * t)) * t)
    pcm = (tone * 8000 * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))).astype(np.int16)
    data = encode_ulaw(pcm)
    fmt = (7).to_bytes(2, "little") + (1).to_bytes(2, "little")  # mu-law, mono
    fmt += (8000).to_bytes(4, "little") + (8000).to_bytes(4, "little")  # rate, bytes/s
    fmt += (1).to_bytes(2, "little") + (8).to_bytes(2, "little") + (0).to_bytes(2, "little")
    body = b"WAVE" + b"fmt " + len(fmt).to_bytes(4, "little") + fmt
    body += b"data" + len(data).to_bytes(4, "little") + data
    path.write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)


# ------------------------------------------------------------------------------------------
# Phases
# ------------------------------------------------------------------------------------------


@dataclass
class Plan:
    soak_calls: int
    soak_marks: tuple[int, ...]
    concurrent: int
    conc_hold_ms: int
    conc_calls: int
    warmup_calls: int
    rates: tuple[float, ...]
    rate_window_s: float
    rtp_calls: int
    rtp_rate: float
    rtp_hold_ms: int


def make_plan(args: argparse.Namespace) -> Plan:
    if args.quick:
        plan = Plan(
            soak_calls=1000,
            soak_marks=(250, 500, 1000),
            concurrent=200,
            conc_hold_ms=3000,
            conc_calls=400,
            warmup_calls=100,
            rates=tuple(args.rates or (args.rate,)),
            rate_window_s=8.0,
            rtp_calls=40,
            rtp_rate=10.0,
            rtp_hold_ms=3000,
        )
    else:
        plan = Plan(
            soak_calls=args.soak_calls,
            soak_marks=tuple(
                m for m in (1000, 2000, 5000, args.soak_calls) if m <= args.soak_calls
            ),
            concurrent=args.concurrent,
            conc_hold_ms=max(5000, int(args.concurrent / args.rate * 1000 * 1.5)),
            conc_calls=args.conc_calls or int(args.concurrent * 2.5),
            warmup_calls=300,
            rates=tuple(args.rates or DEFAULT_RATES),
            rate_window_s=15.0,
            rtp_calls=200,
            rtp_rate=20.0,
            rtp_hold_ms=5000,
        )
    return plan


def phase_soak(args: argparse.Namespace, plan: Plan, workdir: Path) -> dict[str, Any]:
    server = ServerProcess(workdir, args, "soak")
    try:
        idle = server.stats(deep=True)
        res, sampler = run_sipp(
            server,
            workdir,
            "soak",
            SCENARIOS / "load_siprec.xml",
            rate=args.rate,
            calls=plan.soak_calls,
            hold_ms=1000,
            limit=args.max_sessions,
            marks=plan.soak_marks,
        )
        end = server.stats(deep=True)
        # Transactions outlive their calls by 32 s (UDP Timer J for the BYE, RFC 6026
        # Timer L for the INVITE's 2xx), a 2xx nobody ACKs is resent for 32 s and the
        # BYE that ends it may time out after 32 s more: wait that out, then every
        # per-call object should be gone, whatever RSS the allocator keeps.
        deadline = time.monotonic() + 75
        while time.monotonic() < deadline:
            st = server.stats()
            if st["sip_server_tx"] == 0 and st["sip_dialogs"] == 0:
                break
            time.sleep(1)
        drained = server.stats(deep=True)
    finally:
        server.stop()
    last = plan.soak_marks[-1]
    if last not in sampler.at_marks:  # failed calls never end: the last mark is "all done"
        sampler.at_marks[last] = {**end, "completed": end["ended"] - sampler.base_ended}
    marks = {m: sampler.at_marks.get(m) for m in plan.soak_marks}
    ref_mark = 2000 if marks.get(2000) else plan.soak_marks[0]
    ref = marks[ref_mark]
    drift: dict[str, float | None] = {}
    for m, st in marks.items():
        drift[str(m)] = (
            round((st["vmrss"] - ref["vmrss"]) / ref["vmrss"] * 100, 2) if st and ref else None
        )
    later = [d for m, d in drift.items() if int(m) > ref_mark and d is not None]
    # the working set fills while transactions linger (32 s): steady state after ~40 s
    steady = next((m for m in plan.soak_marks if m >= args.rate * 40 and marks[m]), None)
    steady_drift = {
        str(m): round((st["vmrss"] - marks[steady]["vmrss"]) / marks[steady]["vmrss"] * 100, 2)
        for m, st in marks.items()
        if steady is not None and st and m > steady
    }
    return {
        "sipp": asdict(res),
        "idle": _mem(idle),
        "marks": {str(m): _mem(st) if st else None for m, st in marks.items()},
        "end": _mem(end),
        "drained": _mem(drained),
        "objects_left_after_drain": drained["gc_objects"] - idle["gc_objects"],
        # frozen objects are never collected: nothing a call made may join them
        "gc_frozen": {"start": server.hello.get("gc_frozen"), "drained": drained["gc_frozen"]},
        "reference_mark": ref_mark,
        "rss_drift_pct": drift,
        "flat_within_5pct": bool(later) and all(abs(d) <= 5.0 for d in later),
        "steady_mark": steady,
        "rss_drift_after_steady_pct": steady_drift,
        "timeline": _timeline(sampler.samples),
    }


def _mem(st: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "completed", "ended", "active", "vmrss", "vmhwm", "vmrss_after_gc", "gc_objects",
        "tasks", "sip_server_tx", "sip_client_tx", "sip_dialogs", "sip_merged",
        "ports_in_use", "threads", "gc_frozen",
    )  # fmt: skip
    return {k: st[k] for k in keys if k in st}


def _timeline(samples: list[dict[str, Any]], every: int = 4) -> list[dict[str, Any]]:
    if not samples:
        return []
    t0 = samples[0]["t"]
    return [
        {
            "t": round(s["t"] - t0, 1),
            "active": s["active"],
            "ended": s["ended"],
            "rss_kib": s["vmrss"],
            "lag_ms": s["loop_lag_max_ms"],
            "sip_tx": s["sip_server_tx"],
            "dialogs": s["sip_dialogs"],
        }
        for s in samples[::every]
    ]


def phase_conc(args: argparse.Namespace, plan: Plan, workdir: Path) -> dict[str, Any]:
    server = ServerProcess(workdir, args, "conc")
    try:
        warm, _ = run_sipp(
            server,
            workdir,
            "conc-warmup",
            SCENARIOS / "load_siprec.xml",
            rate=min(args.rate, 100.0),
            calls=plan.warmup_calls,
            hold_ms=500,
            limit=args.max_sessions,
        )
        idle = server.stats(deep=True)
        res, sampler = run_sipp(
            server,
            workdir,
            "conc",
            SCENARIOS / "load_siprec.xml",
            rate=args.rate,
            calls=plan.conc_calls,
            hold_ms=plan.conc_hold_ms,
            limit=plan.concurrent,
            objects_at=(
                int(plan.concurrent * 0.95),
                warm.successful + plan.conc_calls - plan.concurrent // 2,
            ),
        )
        end = server.stats(deep=True)
    finally:
        server.stop()
    peak = max(sampler.samples, key=lambda s: (s["active"], s["vmrss"]))
    per_call = (peak["vmrss"] - idle["vmrss_after_gc"]) / peak["active"] if peak["active"] else 0
    return {
        "warmup": {"failed": warm.failed, "successful": warm.successful},
        "sipp": asdict(res),
        "idle": _mem(idle),
        "peak": _mem(peak),
        "end": _mem(end),
        "kib_per_concurrent_call": round(per_call, 1),
        "gc_tracked_at_peak": sampler.objects,
        "gc_frozen": server.hello.get("gc_frozen"),
        "timeline": _timeline(sampler.samples),
    }


def phase_rate(args: argparse.Namespace, plan: Plan, workdir: Path) -> dict[str, Any]:
    server = ServerProcess(workdir, args, "rate")
    runs: list[dict[str, Any]] = []
    sustained = 0.0
    try:
        for rate in plan.rates:
            server.wait_idle(60)
            res, _ = run_sipp(
                server,
                workdir,
                f"rate-{rate:g}",
                SCENARIOS / "load_siprec.xml",
                rate=rate,
                calls=int(rate * plan.rate_window_s),
                hold_ms=1000,
                limit=args.max_sessions,
            )
            ok = res.failed == 0 and res.created == res.calls and res.achieved_rate >= 0.95 * rate
            runs.append({**asdict(res), "ok": ok})
            print(f"  rate {rate:g}/s: {_row(res)}", flush=True)
            if not ok:
                break
            sustained = rate
    finally:
        server.stop()
    return {"runs": runs, "sustained_rate": sustained}


def phase_rtp(args: argparse.Namespace, plan: Plan, workdir: Path) -> dict[str, Any]:
    server = ServerProcess(workdir, args, "rtp")
    try:
        res, _ = run_sipp(
            server,
            workdir,
            "rtp",
            SCENARIOS / "load_siprec_rtp.xml",
            rate=plan.rtp_rate,
            calls=plan.rtp_calls,
            hold_ms=plan.rtp_hold_ms,
            limit=args.max_sessions,
        )
        end = server.stats(deep=True)
    finally:
        server.stop()
    audio = end.get("audio_ms", {})
    first = audio.get("1", {})
    return {
        "sipp": asdict(res),
        "audio_ms_by_label": audio,
        # sipp streams from the ACK to the BYE; the server counts decoded audio per stream
        "first_stream_audio_vs_hold": round((first.get("mean") or 0) / plan.rtp_hold_ms, 3),
        "second_stream_audio_ms_max": audio.get("2", {}).get("max"),
    }


# ------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------


def _row(r: SippResult) -> str:
    inv, bye = r.invite_ms, r.bye_ms
    return (
        f"{r.target_rate:>6g} {r.achieved_rate:>7.1f} {r.created:>7} {r.successful:>7} "
        f"{r.failed:>5} {r.retransmissions:>6} {r.peak_concurrent:>6} "
        f"{_f(inv.get('p50'))} {_f(inv.get('p95'))} {_f(inv.get('p99'))} {_f(bye.get('p95'))} "
        f"{r.server_cpu_cores:>5.2f} {r.server_cpu_ms_per_call:>5.2f} {r.sipp_cpu_cores:>5.2f} "
        f"{r.others_cpu_cores:>5.2f} {_f(r.loop_lag_ms.get('p99'))} {r.loop_lag_max_ms:>6.0f} "
        f"{r.gc_pause_max_ms:>5.0f} {_f((r.gc_pauses_ms.get('2') or {}).get('max'))} "
        f"{(r.gc_pauses_ms.get('2') or {}).get('n', 0):>4}"
    )


def _f(v: float | None) -> str:
    return f"{v:>6.1f}" if v is not None else "     -"


HEADER = (
    "  rate achvd created success fail retrans peak  inv50  inv95  inv99  bye95 "
    " srvC ms/cl  sipC othrC lag99 lagmax gcms  gc2ms  gc2n"
)


def report(result: dict[str, Any]) -> str:
    lines = [
        f"sipscribe SIP/SIPREC load — server '{result['server']}' (signalling"
        f"{' + media' if result['server'] == 'media' else ' + media + store/API'}; NO ASR)",
        f"host: {result['host']['cores']} cores, load average before "
        f"{result['host']['loadavg_before']}, after {result['host']['loadavg_after']}",
        "",
        "rate/s: attempted (sipp -r) and achieved (created / arrival window); inv/bye: "
        "INVITE→200, BYE→200 ms (p50/p95/p99);",
        "peak: simultaneous calls at the server; srvC/sipC/othrC: cores used by the server, "
        "sipp, other programs;",
        "ms/cl: server CPU ms per call; lag99/lagmax: event-loop lag p99/worst; gcms: longest "
        "garbage-collector pause; gc2ms/gc2n: longest full (gen2) collection, and how many",
        "",
        "phase " + HEADER,
    ]
    rows: list[tuple[str, dict[str, Any]]] = []
    phases = result["phases"]
    if "rate" in phases:
        rows += [("rate ", r) for r in phases["rate"]["runs"]]
    if "conc" in phases:
        rows.append(("conc ", phases["conc"]["sipp"]))
    if "soak" in phases:
        rows.append(("soak ", phases["soak"]["sipp"]))
    if "rtp" in phases:
        rows.append(("rtp  ", phases["rtp"]["sipp"]))
    for label, r in rows:
        lines.append(label + " " + _row(SippResult(**r if "ok" not in r else _drop_ok(r))))
    lines.append("")
    if "rate" in phases:
        lines.append(
            f"sustained set-up rate with zero failed calls: "
            f"{phases['rate']['sustained_rate']:g} calls/s"
        )
    if "conc" in phases:
        c = phases["conc"]
        lines.append(
            f"concurrent: peak {c['peak']['active']} calls (target {result['plan']['concurrent']}),"
            f" failed {c['sipp']['failed']}; RSS idle {c['idle']['vmrss_after_gc'] / 1024:.1f} MiB"
            f" → {c['peak']['vmrss'] / 1024:.1f} MiB at the peak = "
            f"{c['kib_per_concurrent_call']:.1f} KiB per concurrent call"
        )
        if c.get("gc_tracked_at_peak"):
            t = c["gc_tracked_at_peak"]
            lines.append(
                f"      gc-tracked objects at {t['active']} calls (gen0/1/2): {t['gc_tracked']}"
                f", frozen {c.get('gc_frozen')}"
            )
        pauses = c["sipp"].get("gc_pauses_ms") or {}
        lines.append(
            "      gc pauses ms by generation: "
            + "; ".join(
                f"gen{g} n={p['n']} p50={p['p50']} p99={p['p99']} max={p['max']}"
                for g, p in pauses.items()
            )
        )
    if "soak" in phases:
        s = phases["soak"]
        parts = [
            f"{m}{_done(st, int(m))}: {st['vmrss'] / 1024:.1f} MiB ({s['rss_drift_pct'][m]:+.1f} %)"
            for m, st in s["marks"].items()
            if st
        ]
        lines.append(
            f"soak: {s['sipp']['successful']} calls, failed {s['sipp']['failed']}; RSS after "
            f"N completed calls (vs {s['reference_mark']}): " + ", ".join(parts)
        )
        objs = [
            f"{m}: {st.get('gc_objects')}/{st.get('sip_server_tx')}"
            for m, st in s["marks"].items()
            if st
        ]
        lines.append(
            f"      gc objects/live SIP transactions {', '.join(objs)}; within ±5 % of "
            f"{s['reference_mark']}: {s['flat_within_5pct']}; after the steady mark "
            f"{s['steady_mark']}: {s['rss_drift_after_steady_pct']}"
        )
        d = s["drained"]
        lines.append(f"      frozen objects at start/after drain: {s.get('gc_frozen')}")
        lines.append(
            f"      drained (transactions expired): {d.get('sip_server_tx')} transactions, "
            f"{s['objects_left_after_drain']:+d} gc objects vs idle, RSS {d['vmrss'] / 1024:.1f}"
            f" MiB (idle {s['idle']['vmrss'] / 1024:.1f})"
        )
    if "rtp" in phases:
        r = phases["rtp"]
        a1 = r["audio_ms_by_label"].get("1", {})
        lines.append(
            f"rtp: {r['sipp']['successful']} calls with RTP on the first m-line, failed "
            f"{r['sipp']['failed']}; audio received per stream mean {a1.get('mean')} ms, "
            f"p50 {a1.get('p50')} of {result['plan']['rtp_hold_ms']} ms held "
            f"(ratio {r['first_stream_audio_vs_hold']})"
        )
    lines.append("")
    lines.append("command: " + result["command"])
    return "\n".join(lines)


def _done(st: dict[str, Any], mark: int) -> str:
    done = int(st.get("completed", mark))
    return "" if done >= mark else f" ({done} done)"


def _drop_ok(r: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in r.items() if k != "ok"}


def _rates(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"rates must be numbers: {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"rates must be positive: {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:
        asyncio.run(_serve(json.loads(argv[1])))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="scaled-down phases, about 1 minute")
    ap.add_argument(
        "--phases", default="rate,conc,soak,rtp", help="comma-separated: rate,conc,soak,rtp"
    )
    ap.add_argument("--server", choices=("media", "full"), default="media")
    ap.add_argument("--rate", type=float, default=100.0, help="calls/s for soak and conc")
    ap.add_argument("--rates", type=_rates, default=None, help=f"default {DEFAULT_RATES}")
    ap.add_argument("--concurrent", type=int, default=1000)
    ap.add_argument("--soak-calls", type=int, default=10_000)
    ap.add_argument(
        "--conc-calls", type=int, default=None, help="calls of the conc phase (2.5 x concurrent)"
    )
    ap.add_argument("--max-sessions", type=int, default=5000)
    ap.add_argument("--ports", default="20000-29999", help="the server's RTP port range")
    ap.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "OFF"))
    ap.add_argument("--src", type=Path, help="run the server from this src/ tree (A/B a patch)")
    ap.add_argument(
        "--gc-tuning",
        choices=("on", "off"),
        default="on",
        help="sipscribe.gctune.tune_gc after start-up (the server's default), or CPython's gc",
    )
    ap.add_argument(
        "--gc-threshold",
        type=lambda t: [int(x) for x in t.split(",")],
        help="with --gc-tuning on: the thresholds (a, b, c) instead of GC_THRESHOLDS",
    )
    ap.add_argument("--profile", type=Path, help="cProfile each server into this folder")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.gc_threshold and (args.gc_tuning == "off" or args.server == "full"):
        ap.error("--gc-threshold needs --gc-tuning on and --server media")
    if SIPP is None:
        print("sip_load: sipp not found (apt-get install sip-tester)", file=sys.stderr)
        return 2
    json_path = args.json or (
        DEFAULT_JSON.with_name("sip_load_quick.json") if args.quick else DEFAULT_JSON
    )
    plan = make_plan(args)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(phases) - {"rate", "conc", "soak", "rtp"}
    if unknown:
        ap.error(f"unknown phases: {sorted(unknown)}")
    workdir = Path(tempfile.mkdtemp(prefix="sip_load-"))
    result: dict[str, Any] = {
        "server": args.server,
        "asr": "none (media-only pipeline)" if args.server == "media" else "NullEngine",
        "server_src": str((args.src or ROOT / "src").resolve()),
        "gc": {"tuning": args.gc_tuning, "threshold": args.gc_threshold},
        "command": " ".join([Path(sys.executable).name, "bench/sip_load.py", *argv]),
        "host": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "sipp": subprocess.run([SIPP, "-v"], capture_output=True, text=True, check=False)
            .stdout.strip()
            .splitlines()[-1:],
            "loadavg_before": os.getloadavg(),
        },
        "plan": asdict(plan),
        "phases": {},
    }
    runners = {"rate": phase_rate, "conc": phase_conc, "soak": phase_soak, "rtp": phase_rtp}
    t0 = time.monotonic()
    try:
        for name in phases:
            print(f"[{time.monotonic() - t0:6.1f}s] phase {name} ...", flush=True)
            result["phases"][name] = runners[name](args, plan, workdir)
    finally:
        result["host"]["loadavg_after"] = os.getloadavg()
        result["wall_s"] = round(time.monotonic() - t0, 1)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2, default=str))
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(report(result))
    print(f"\nJSON: {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
