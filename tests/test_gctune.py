"""The garbage-collector policy and the pause histogram (real collections, no mocks)."""

from __future__ import annotations

import gc
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sipscribe.api.metrics import Metrics
from sipscribe.config import load_settings
from sipscribe.gctune import GC_THRESHOLDS, GcPauseWatch, tune_gc


@pytest.fixture(autouse=True)
def gc_state() -> Iterator[None]:
    """Whatever a test does, the collector is as it was afterwards."""
    thresholds = gc.get_threshold()
    frozen = gc.get_freeze_count()
    callbacks = list(gc.callbacks)
    enabled = gc.isenabled()
    yield
    if frozen == 0:
        gc.unfreeze()
    gc.set_threshold(*thresholds)
    gc.callbacks[:] = callbacks
    if enabled:
        gc.enable()


def _cycle() -> None:
    """Garbage only the cyclic collector can free."""
    a: dict[str, Any] = {}
    a["self"] = a


def _count(metrics: Metrics, generation: str) -> float:
    value = metrics.registry.get_sample_value(
        "sipscribe_gc_pause_seconds_count", {"generation": generation}
    )
    return value or 0.0


def test_enabled_freezes_and_sets_thresholds_and_restore_undoes_it() -> None:
    if gc.get_freeze_count():
        pytest.skip("the collector is already frozen in this process")
    before = gc.get_threshold()
    settings = load_settings(gc_tuning=True)
    old: list[object] = [object()]  # a list is always tracked by the collector
    gc.disable()  # no automatic collection may take the garbage first
    _cycle()
    tuning = tune_gc(settings, thresholds=(12_345, 7, 9))
    assert tuning.enabled
    assert gc.get_threshold() == (12_345, 7, 9) == tuning.thresholds
    assert tuning.thresholds_before == before
    assert tuning.collected >= 1, "start-up garbage is collected before the freeze"
    assert 1000 < gc.get_freeze_count() <= tuning.frozen
    # frozen: in no generation, so no collection walks it again
    assert not any(old is o for g in range(3) for o in gc.get_objects(generation=g))
    tuning.restore()
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
    assert any(old is o for o in gc.get_objects(generation=2)), "back in the oldest generation"


def _full_collections_while_growing(n: int) -> int:
    """Automatic generation-2 collections while `n` long-lived containers are made."""
    full: list[int] = []
    keep: list[list[int]] = []
    gc.collect()  # every generation's count starts from zero
    with GcPauseWatch(lambda gen, _s: full.append(gen) if gen == 2 else None):
        for i in range(n):
            keep.append([i])
    return len(full)


def test_default_thresholds_make_full_collections_rarer() -> None:
    gc.set_threshold(700, 10, 10)
    untuned = _full_collections_while_growing(300_000)
    tuning = tune_gc(load_settings(gc_tuning=True))
    assert gc.get_threshold() == GC_THRESHOLDS
    tuned = _full_collections_while_growing(300_000)
    tuning.restore()
    assert untuned >= 1, "CPython's thresholds collect generation 2 while the heap grows"
    assert tuned < untuned


def test_disabled_changes_nothing() -> None:
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    tuning = tune_gc(load_settings(gc_tuning=False))
    assert not tuning.enabled and tuning.frozen == 0
    assert gc.get_threshold() == before == tuning.thresholds
    assert gc.get_freeze_count() == frozen
    tuning.restore()
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen


def test_setting_defaults_on_and_env_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().gc_tuning is True
    monkeypatch.setenv("SIPSCRIBE_GC_TUNING", "false")
    assert load_settings().gc_tuning is False


def test_pause_histogram_counts_collections_by_generation() -> None:
    metrics = Metrics()
    tuning = tune_gc(load_settings(gc_tuning=False), pause_histogram=metrics.gc_pause)
    gc.disable()  # only the collections below: explicit ones still run the callbacks
    before2, before0 = _count(metrics, "2"), _count(metrics, "0")
    _cycle()
    gc.collect(2)
    gc.collect(0)
    assert _count(metrics, "2") == before2 + 1
    assert _count(metrics, "0") == before0 + 1
    total = metrics.registry.get_sample_value("sipscribe_gc_pause_seconds_sum", {"generation": "2"})
    assert total is not None and total > 0
    text = metrics.render()[0].decode()
    assert 'sipscribe_gc_pause_seconds_bucket{generation="2",le="+Inf"}' in text
    tuning.restore()  # the watch is gone: collections are no longer counted
    after = _count(metrics, "2")
    gc.collect(2)
    assert _count(metrics, "2") == after


def test_watch_reports_each_collection_once() -> None:
    seen: list[tuple[int, float]] = []
    gc.disable()
    with GcPauseWatch(lambda gen, s: seen.append((gen, s))) as watch:
        watch.start()  # idempotent: still one callback
        gc.collect(1)
        gc.collect(2)
    gc.collect(2)
    assert [gen for gen, _ in seen] == [1, 2]
    assert all(s > 0 for _, s in seen)


async def test_server_tunes_after_start_and_undoes_it_on_stop(
    tmp_path: Path,
    engine: Any,
) -> None:
    from sipscribe.app import Server

    if gc.get_freeze_count():
        pytest.skip("the collector is already frozen in this process")
    before = gc.get_threshold()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        base = 46000 + sock.getsockname()[1] % 100 * 100
    settings = load_settings(
        data_dir=tmp_path / "data",
        http_port=0,
        sip_port=0,
        sip_host="127.0.0.1",
        http_host="127.0.0.1",
        rtp_host="127.0.0.1",
        rtp_port_min=base,
        rtp_port_max=base + 99,
        llm_backend="none",
    )
    server = Server(settings)
    try:
        await server.start(engine=engine)
        assert gc.get_threshold() == GC_THRESHOLDS
        # frozen objects still die by reference counting; only cycles among them stay
        assert 0 < gc.get_freeze_count() <= server.gc_tuning.frozen
        gc.collect(2)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}") as c:
            text = (await c.get("/metrics")).text
        assert 'sipscribe_gc_pause_seconds_count{generation="2"}' in text
    finally:
        await server.stop(drain_timeout=1)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
