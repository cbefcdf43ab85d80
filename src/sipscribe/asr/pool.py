"""The process's one ASR worker pool, shared fairly by every live call.

Theory of operation. Callers ``submit`` an utterance under a key (the call id) and get
a future; the receive path never waits on recognition. Jobs wait in one FIFO per key;
a worker that frees up takes jobs round-robin across keys (one per key per turn, so a
long-winded caller cannot starve others) until the batch fills one packed Whisper
window, then runs ``engine.transcribe_many`` on a thread. Under light load a batch is a
single utterance (lowest latency); under heavy load batches grow and throughput rises.

Falling behind is never silent and never drops audio: queue depth and waiting audio
seconds are observable, and crossing ``warn_backlog_s`` logs one line per episode.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from sipscribe.asr.base import ASR_SAMPLE_RATE, AsrEngine, Transcript
from sipscribe.asr.whisper import PACK_GAP_S, PACK_WINDOW_S

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class _Job:
    key: str
    audio: np.ndarray
    language: str | None
    future: asyncio.Future[Transcript]
    enqueued: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class PoolStats:
    queued: int
    queued_audio_s: float
    in_flight: int
    batches: int
    utterances: int
    max_batch_seen: int


class AsrPool:
    """Bounded, fair recognition for all calls of the process."""

    def __init__(
        self,
        engine: AsrEngine,
        *,
        workers: int = 1,
        max_batch: int = 8,
        window_s: float = PACK_WINDOW_S,
        gap_s: float = PACK_GAP_S,
        warn_backlog_s: float = 60.0,
        on_depth: Callable[[int, float], None] | None = None,
        nice: int = 0,
    ) -> None:
        if workers < 1 or max_batch < 1:
            raise ValueError("workers and max_batch must be at least 1")
        self.engine = engine
        self.workers = workers
        self.max_batch = max_batch
        self._window = int(window_s * ASR_SAMPLE_RATE)
        self._gap = int(gap_s * ASR_SAMPLE_RATE)
        self.warn_backlog_s = warn_backlog_s
        self._on_depth = on_depth
        self.nice = nice
        self._queues: OrderedDict[str, deque[_Job]] = OrderedDict()
        self._queued_samples = 0
        self._queued = 0
        self._in_flight = 0
        self._batches = 0
        self._utterances = 0
        self._max_batch_seen = 0
        self._warned = False
        self._wakeup: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        if self._tasks:
            return
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(
            max_workers=self.workers,
            thread_name_prefix="asr",
            initializer=lower_thread_priority,
            initargs=(self.nice,),
        )
        self._tasks = [
            asyncio.create_task(self._worker(i), name=f"asr-worker-{i}")
            for i in range(self.workers)
        ]

    async def stop(self, *, drain: bool = True) -> None:
        """Stop the workers; with ``drain`` every queued utterance is recognised first."""
        self._closing = True
        if drain:
            while self._queued or self._in_flight:
                assert self._wakeup is not None
                self._wakeup.set()
                await asyncio.sleep(0.01)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for q in self._queues.values():
            for job in q:
                if not job.future.done():
                    job.future.cancel()
        self._queues.clear()
        self._queued = self._queued_samples = 0
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def __aenter__(self) -> AsrPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- submitting --------------------------------------------------------------------
    def submit(
        self, audio: np.ndarray, *, key: str, language: str | None = None
    ) -> asyncio.Future[Transcript]:
        """Queue one utterance (16 kHz float32) for recognition; never blocks."""
        if self._wakeup is None:
            raise RuntimeError("AsrPool.start() was not awaited")
        if self._closing:
            raise RuntimeError("AsrPool is shutting down")
        fut: asyncio.Future[Transcript] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(key, deque()).append(_Job(key, audio, language, fut))
        self._queued += 1
        self._queued_samples += audio.size
        self._report_depth()
        self._wakeup.set()
        return fut

    async def transcribe(
        self, audio: np.ndarray, *, key: str = "", language: str | None = None
    ) -> Transcript:
        return await self.submit(audio, key=key, language=language)

    def stats(self) -> PoolStats:
        return PoolStats(
            queued=self._queued,
            queued_audio_s=self._queued_samples / ASR_SAMPLE_RATE,
            in_flight=self._in_flight,
            batches=self._batches,
            utterances=self._utterances,
            max_batch_seen=self._max_batch_seen,
        )

    # -- workers -----------------------------------------------------------------------
    def take_batch(self) -> list[_Job]:
        """Round-robin across keys until the packed window or ``max_batch`` is full."""
        batch: list[_Job] = []
        used = 0
        language: str | None = None
        progressed = True
        while progressed and len(batch) < self.max_batch:
            progressed = False
            for key in list(self._queues):
                q = self._queues[key]
                job = q[0]
                need = job.audio.size if not batch else used + self._gap + job.audio.size
                if batch and (need > self._window or job.language != language):
                    continue
                q.popleft()
                if not q:
                    del self._queues[key]
                else:
                    self._queues.move_to_end(key)  # next turn starts with another key
                batch.append(job)
                used = need
                language = job.language
                progressed = True
                if len(batch) >= self.max_batch:
                    break
        self._queued -= len(batch)
        self._queued_samples -= sum(j.audio.size for j in batch)
        return batch

    async def _worker(self, index: int) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queued:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = self.take_batch()
            if not batch:
                continue
            self._in_flight += len(batch)
            self._report_depth()
            try:
                audios = [j.audio for j in batch]
                results = await loop.run_in_executor(
                    self._executor,
                    lambda a=audios, lang=batch[0].language: self.engine.transcribe_many(
                        a, language=lang
                    ),
                )
            except Exception as exc:  # an engine failure fails these utterances only
                log.error("ASR batch of %d failed: %s", len(batch), exc)
                for j in batch:
                    if not j.future.done():
                        j.future.set_exception(exc)
            else:
                for j, r in zip(batch, results, strict=True):
                    if not j.future.done():
                        j.future.set_result(r)
                self._batches += 1
                self._utterances += len(batch)
                self._max_batch_seen = max(self._max_batch_seen, len(batch))
            finally:
                self._in_flight -= len(batch)
                self._report_depth()

    def _report_depth(self) -> None:
        backlog = self._queued_samples / ASR_SAMPLE_RATE
        if self._on_depth is not None:
            self._on_depth(self._queued + self._in_flight, backlog)
        if backlog > self.warn_backlog_s and not self._warned:
            self._warned = True
            log.warning(
                "ASR is falling behind: %.1f s of speech from %d calls waiting (limit %.0f s); "
                "utterance latency is rising, no audio is dropped",
                backlog,
                len(self._queues),
                self.warn_backlog_s,
            )
        elif backlog < self.warn_backlog_s / 2 and self._warned:
            self._warned = False
            log.info("ASR backlog recovered: %.1f s waiting", backlog)


def lower_thread_priority(nice: int) -> None:
    """Make the calling thread (and threads it starts) yield the CPU to the event loop.

    Recognition that falls behind only adds latency; a receive loop that falls behind
    lets the kernel drop RTP. On Linux niceness is per thread and inherited by threads
    created later (CTranslate2's workers), so this is called in the ASR threads and in
    the thread that loads the model.
    """
    if nice <= 0:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, 0, min(19, os.getpriority(os.PRIO_PROCESS, 0) + nice))
    except (AttributeError, OSError) as exc:  # not Linux, or not permitted
        log.debug("cannot lower ASR thread priority: %s", exc)


async def load_in_low_priority_thread(factory: Callable[[], T], nice: int) -> T:
    """Run ``factory`` (a model load) in a fresh thread whose priority is lowered first."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        lower_thread_priority(nice)
        try:
            result = factory()
        except BaseException as exc:  # handed to the awaiting coroutine
            loop.call_soon_threadsafe(done.set_exception, exc)
        else:
            loop.call_soon_threadsafe(done.set_result, result)

    threading.Thread(target=run, name="asr-load", daemon=True).start()
    return await done
