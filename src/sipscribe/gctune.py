"""Garbage-collector policy for the long-running server, and a watch on its pauses.

Why: CPython's cyclic collector holds the GIL for a whole collection, so the event loop
(SIP, RTP) stands still meanwhile. A full (generation 2) collection walks every tracked
container; after start-up most of them live as long as the process (modules, the ASR
model's Python side, FastAPI routes, pydantic and SQLAlchemy metadata), and walking them
again and again finds nothing. ``bench/sip_load.py`` measured loop stalls of 350-570 ms
in gen2 collections at 1,000 concurrent SIPREC sessions.

The policy (:func:`tune_gc`, once, at the end of ``Server.start``):

1. ``gc.collect(2)``: start-up garbage goes now, so it is not frozen with the rest.
2. ``gc.freeze()``: everything alive moves to the permanent generation, which no
   collection walks. Reference counting still frees frozen objects, but a frozen cycle
   is never collected, so this runs once, before the first call: a call's objects (tasks,
   protocols, dialogs: cycles) frozen by a later freeze would leak.
3. ``gc.set_threshold(*GC_THRESHOLDS)``: full collections ten times rarer. Their length
   is set by the objects the live calls hold (~300 per call), which no threshold changes;
   how often they come is. Generations 0 and 1 keep CPython's sizes: they free nearly all
   cyclic garbage (in the bench ~0.1 object per call was left for generation 2, so a full
   collection may wait), and in 3.11 threshold 0 counts allocations *minus*
   deallocations, so a large one (10,000, 50,000) lets generation 0 grow to 100,000s of
   objects under call churn and its collections become as long as a full one.

:class:`GcPauseWatch` times every collection through ``gc.callbacks`` and reports
``(generation, seconds)``; the server exports them as the Prometheus histogram
``sipscribe_gc_pause_seconds{generation=...}``.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["GC_THRESHOLDS", "GcPauseWatch", "GcTuning", "tune_gc"]

log = logging.getLogger(__name__)

#: (gen0 net allocations, gen0 collections per gen1, gen1 collections per gen2); CPython's
#: default is (700, 10, 10). Chosen from bench/sip_load.py runs (bench/README.md).
GC_THRESHOLDS: tuple[int, int, int] = (700, 10, 100)


class _Observer(Protocol):
    def observe(self, amount: float) -> None: ...


class _LabelledHistogram(Protocol):
    def labels(self, *labelvalues: str) -> _Observer: ...


@dataclass
class GcPauseWatch:
    """Calls ``observe(generation, seconds)`` after every collection, in any thread.

    A collection never nests (CPython refuses to start one while another runs), so one
    start time suffices. ``observe`` runs inside the collection: it must not block.
    """

    observe: Callable[[int, float], None]
    _started: float = 0.0
    _active: bool = False

    @classmethod
    def to_histogram(cls, histogram: _LabelledHistogram) -> GcPauseWatch:
        """A watch feeding a histogram labelled by generation.

        The children are made here: ``labels()`` takes the metric's lock and allocates,
        and a collection triggered inside that lock would deadlock on it in the callback.
        """
        children = tuple(histogram.labels(str(gen)) for gen in range(3))
        return cls(lambda gen, seconds: children[gen].observe(seconds))

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started:
            took = time.perf_counter() - self._started
            self._started = 0.0
            self.observe(int(info["generation"]), took)

    def start(self) -> None:
        if not self._active:
            gc.callbacks.append(self._callback)
            self._active = True

    def stop(self) -> None:
        if self._active:
            gc.callbacks.remove(self._callback)
            self._active = False

    def __enter__(self) -> GcPauseWatch:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


@dataclass
class GcTuning:
    """What :func:`tune_gc` did, and how to undo it (``Server.stop``, tests)."""

    enabled: bool
    thresholds_before: tuple[int, int, int]
    thresholds: tuple[int, int, int]
    #: unreachable objects the collection before the freeze found
    collected: int = 0
    #: objects in the permanent generation after the freeze
    frozen: int = 0
    #: seconds the collection and the freeze took
    took_s: float = 0.0
    watch: GcPauseWatch | None = field(default=None, repr=False)

    def restore(self) -> None:
        """Stop the watch; unfreeze and restore the thresholds if this tuning set them.

        Unfreezing hands the objects back to generation 2, so a process that starts
        servers again and again (the tests) does not keep each one's objects forever.
        """
        if self.watch is not None:
            self.watch.stop()
        if self.enabled:
            gc.unfreeze()
            gc.set_threshold(*self.thresholds_before)


def tune_gc(
    settings: Any,
    *,
    pause_histogram: _LabelledHistogram | None = None,
    thresholds: tuple[int, int, int] = GC_THRESHOLDS,
    collect: bool = True,
) -> GcTuning:
    """Apply the policy above when ``settings.gc_tuning`` (default on); watch pauses always.

    Call once, after start-up and before the first call is accepted.
    """
    watch = GcPauseWatch.to_histogram(pause_histogram) if pause_histogram is not None else None
    if watch is not None:
        watch.start()
    before = _threshold()
    if not getattr(settings, "gc_tuning", True):
        return GcTuning(False, before, before, watch=watch)
    t0 = time.perf_counter()
    collected = gc.collect(2) if collect else 0
    gc.freeze()
    gc.set_threshold(*thresholds)
    tuning = GcTuning(
        enabled=True,
        thresholds_before=before,
        thresholds=_threshold(),
        collected=collected,
        frozen=gc.get_freeze_count(),
        took_s=time.perf_counter() - t0,
        watch=watch,
    )
    log.info(
        "gc tuned: %d objects frozen, %d collected first (%.0f ms), thresholds %s -> %s",
        tuning.frozen,
        tuning.collected,
        tuning.took_s * 1000,
        before,
        tuning.thresholds,
    )
    return tuning


def _threshold() -> tuple[int, int, int]:
    a, b, c = gc.get_threshold()
    return (a, b, c)
