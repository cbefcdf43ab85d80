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


def test_coverage_rule_flags_truncated_pieces() -> None:
    from sipscribe.asr.whisper import covers

    words = [Word(" He", 0.2, 0.4, 0.9), Word(" was", 0.4, 0.6, 0.9), Word(" not", 0.6, 0.9, 0.9)]
    assert not covers(words, 3.0), "three words in a 3 s utterance: decoding stopped early"
    assert not covers([], 2.0)
    assert covers([], 0.6), "too short to judge"
    assert covers([*words, Word(" man", 2.2, 2.5, 0.9)], 3.0)


def test_truncated_pieces_are_recognised_again(engine, librivox) -> None:  # type: ignore[no-untyped-def]
    """Packing never loses a piece: every utterance gets text even with tiny ones between."""
    import numpy as np

    noise = (0.002 * np.random.default_rng(3).standard_normal(8000)).astype(np.float32)
    pieces = [librivox[1].audio, noise, librivox[4].audio, librivox[1].audio]
    results = engine.transcribe_many(pieces)
    for i in (0, 2, 3):
        assert len(results[i].text.split()) >= 5, (i, results[i].text)


def test_segments_across_a_gap_mark_their_pieces() -> None:
    from sipscribe.asr.whisper import pieces_spanned_together

    spans = [(0.0, 3.0), (4.0, 7.0), (8.0, 9.0)]
    assert pieces_spanned_together([(0.0, 3.0), (4.1, 6.9), (8.0, 9.0)], spans) == set()
    assert pieces_spanned_together([(0.0, 6.5), (8.0, 9.0)], spans) == {0, 1}
    assert pieces_spanned_together([(2.9, 4.1)], spans) == set(), "edges within tolerance"


def test_identical_neighbours_are_not_merged(engine, librivox) -> None:  # type: ignore[no-untyped-def]
    """Five calls saying the same sentence at once: each gets the sentence exactly once."""
    rec = librivox[4]
    results = engine.transcribe_many([rec.audio] * 5)
    for tr in results:
        assert word_error_rate([rec.text], [tr.text]) <= 0.2, tr.text


def test_pieces_with_foreign_words_are_flagged() -> None:
    from sipscribe.asr.whisper import covers, repeats

    sentence = "He might even have been made amiable himself.".split()
    once = [Word(f" {t}", 0.2 + 0.3 * i, 0.45 + 0.3 * i, 0.9) for i, t in enumerate(sentence)]
    twice = once + [Word(w.text, w.start + 0.01, w.end + 0.01, 0.9) for w in once]
    assert covers(once, 3.0)
    assert repeats(twice) and not covers(twice, 3.0)
    assert not repeats(once)
    fast = [Word(" a", 0.1 * i, 0.1 * i + 0.05, 0.9) for i in range(20)]
    assert not covers(fast, 2.4), "20 words in 2 s of speech"


def test_early_stop_is_recovered_from_the_audible_tail(engine, librivox) -> None:  # type: ignore[no-untyped-def]
    """Whisper's real output on two sentences, then the same words cut short as an early
    stop shows them (the last word stretched over the rest): the tail is recognised again."""
    from sipscribe.asr.base import Word

    a, b = librivox[0].audio, librivox[1].audio
    audio = np.concatenate([a, np.zeros(8000, dtype=np.float32), b]).astype(np.float32)
    full = engine.transcribe(audio, language="en")
    cut = [w for w in full.words if w.end <= a.size / 16000 + 0.1]
    assert 3 <= len(cut) < len(full.words)
    last = cut[-1]
    stopped = [*cut[:-1], Word(last.text, last.start, audio.size / 16000 - 0.05, last.probability)]
    before = engine.early_stop_retries
    words, text = engine._recover_early_stop(audio, stopped, "".join(w.text for w in stopped), "en")
    assert engine.early_stop_retries == before + 1
    assert len(words) > len(cut)
    tail_ref = set(librivox[1].text.lower().split())
    got = {w.text.strip(" .,").lower() for w in words[len(cut) :]}
    assert len(got & tail_ref) >= len(tail_ref) // 2, (text, librivox[1].text)
    # Trailing silence after the last word does not trigger a retry.
    quiet = np.concatenate([a, np.zeros(32000, dtype=np.float32)])
    first = engine.transcribe(quiet, language="en")
    again = engine._recover_early_stop(quiet, list(first.words), first.text, "en")
    assert again[1] == first.text
