from __future__ import annotations

import numpy as np
import pytest

from sipscribe.asr.base import AsrError, Word
from sipscribe.asr.evaluation import word_error_rate
from sipscribe.asr.models import resolve_model
from sipscribe.asr.whisper import WhisperEngine, assign_words, pack_window, plan_packs


def test_transcribes_real_speech_with_word_timings(engine, librivox) -> None:  # type: ignore[no-untyped-def]
    rec = librivox[0]
    tr = engine.transcribe(rec.audio)
    assert word_error_rate([rec.text], [tr.text]) <= 0.15
    assert tr.language == "en"
    assert tr.words, "word timings are part of the contract"
    starts = [w.start for w in tr.words]
    assert starts == sorted(starts)
    assert all(0 <= w.start <= w.end <= rec.duration_s + 0.1 for w in tr.words)
    assert 0 < (tr.confidence or 0) <= 1


def test_int16_input_is_accepted(engine, librivox) -> None:  # type: ignore[no-untyped-def]
    rec = librivox[1]
    pcm = (rec.audio * 32767).astype(np.int16)
    assert engine.transcribe(pcm).text == engine.transcribe(pcm.astype(np.float32) / 32768).text


def test_empty_audio_gives_empty_text(engine) -> None:  # type: ignore[no-untyped-def]
    tr = engine.transcribe(np.zeros(0, dtype=np.float32))
    assert tr.text == "" and tr.words == ()


def test_stereo_array_is_refused(engine) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AsrError, match="mono"):
        engine.transcribe(np.zeros((2, 1600), dtype=np.float32))


def test_english_only_model_refuses_other_languages(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sipscribe.asr.whisper import WhisperOptions

    with pytest.raises(AsrError, match="English-only"):
        WhisperEngine(
            resolve_model("tiny.en", cache_dir=tmp_path), options=WhisperOptions(language="de")
        )


def test_packed_utterances_keep_their_own_words(engine, corpus) -> None:  # type: ignore[no-untyped-def]
    """Utterances from different 'calls' share a window; no word crosses between them."""
    recs = corpus[:8]
    results = engine.transcribe_many([r.audio for r in recs])
    assert len(results) == len(recs)
    for rec, tr in zip(recs, results, strict=True):
        assert all(0 <= w.start <= w.end <= rec.duration_s + 1e-6 for w in tr.words)
    wer = word_error_rate([r.text for r in recs], [t.text for t in results])
    single = [engine.transcribe(r.audio).text for r in recs]
    wer_single = word_error_rate([r.text for r in recs], single)
    assert wer <= max(0.15, wer_single + 0.05), (wer, wer_single)


def test_plan_packs_respects_window_and_order() -> None:
    rate = 16000
    lengths = [5 * rate, 10 * rate, 12 * rate, 20 * rate, 1 * rate, 29 * rate]
    groups = plan_packs(lengths, window_s=28, gap_s=1, rate=rate)
    assert [i for g in groups for i in g] == list(range(len(lengths)))
    for g in groups:
        total = sum(lengths[i] for i in g) + (len(g) - 1) * rate
        assert len(g) == 1 or total <= 28 * rate
    assert groups[0] == [0, 1]  # 5 + 1 + 10 = 16 s; adding 1 + 12 would make 29 s


def test_pack_window_spans() -> None:
    a = np.ones(16000, dtype=np.float32)
    b = np.ones(8000, dtype=np.float32)
    window, spans = pack_window([a, b], gap_s=1.0, rate=16000)
    assert window.size == 16000 + 16000 + 8000
    assert spans == [(0.0, 1.0), (2.0, 2.5)]
    assert not window[16000:32000].any()


def test_assign_words_by_midpoint_and_drops_gap_words() -> None:
    spans = [(0.0, 1.0), (2.0, 3.0)]
    words = [
        Word(" a", 0.1, 0.4, 0.9),
        Word(" b", 0.8, 1.3, 0.9),  # midpoint 1.05 in the gap, overlaps span 0
        Word(" um", 1.3, 1.7, 0.5),  # wholly in the gap: silence said nothing
        Word(" c", 2.1, 2.5, 0.9),
    ]
    first, second = assign_words(words, spans)
    assert [w.text for w in first] == [" a", " b"]
    assert [w.text for w in second] == [" c"]
    assert second[0].start == pytest.approx(0.1) and second[0].end == pytest.approx(0.5)
    assert first[1].end == pytest.approx(1.0), "clamped to its own span"
