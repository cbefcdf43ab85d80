"""Fixtures for the media tests: real speech from Debian's pocketsphinx-testdata."""

from __future__ import annotations

import glob
import wave

import numpy as np
import pytest

SPEECH_GLOB = "/usr/share/pocketsphinx/test/data/librivox/*.wav"


@pytest.fixture(scope="session")
def speech_16k() -> np.ndarray:
    """About 8 s of real read speech (LibriVox via Debian pocketsphinx-testdata), 16 kHz int16."""
    paths = sorted(glob.glob(SPEECH_GLOB))
    if not paths:
        pytest.skip(
            "real speech not found at /usr/share/pocketsphinx/test/data/librivox"
            " (apt-get install pocketsphinx-testdata; `make test` does)"
        )
    clips = []
    for path in paths[:2]:
        with wave.open(path) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
            clips.append(np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16))
    return np.concatenate(clips)


@pytest.fixture(scope="session")
def speech_8k(speech_16k: np.ndarray) -> np.ndarray:
    import soxr

    return soxr.resample(speech_16k, 16000, 8000).astype(np.int16)
