from __future__ import annotations

import numpy as np
import pytest

from sipscribe.media.codecs.cn import ComfortNoiseDecoder, noise_rms
from sipscribe.media.errors import CodecError


def db(x: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) / 32767)


@pytest.mark.parametrize("level", [20, 40, 60, 70])
def test_noise_at_the_signalled_level(level: int) -> None:
    decoder = ComfortNoiseDecoder(8000, seed=level)
    frame = decoder.decode(bytes([level]))
    assert frame.dtype == np.int16 and frame.size == 160  # one 20 ms frame
    fill = decoder.conceal(8000)  # the silence until the next packet, at the same level
    assert abs(db(np.concatenate([frame, fill])) - (-level)) < 1.0
    assert decoder.level == level


def test_spectral_coefficients_are_accepted_and_reserved_bit_ignored() -> None:
    decoder = ComfortNoiseDecoder(seed=1)
    assert decoder.decode(bytes([0x80 | 50, 120, 130, 127])).size == 160
    assert decoder.level == 50


def test_wideband_rates() -> None:
    decoder = ComfortNoiseDecoder(8000, 16000)  # CN/8000 next to G.722's 16 kHz audio
    assert (decoder.clock_rate, decoder.sample_rate) == (8000, 16000)
    assert decoder.decode(b"\x28").size == 320


def test_before_any_packet_conceal_is_silence() -> None:
    assert ComfortNoiseDecoder().conceal(80).tolist() == [0] * 80
    assert ComfortNoiseDecoder().level is None


def test_level_zero_is_clipped_not_wrapped() -> None:
    frame = ComfortNoiseDecoder(seed=3).decode(b"\x00")
    assert frame.max() <= 32767 and frame.min() >= -32768
    assert noise_rms(0) == 32767.0


def test_empty_payload() -> None:
    with pytest.raises(CodecError, match=r"^CN payload is empty$"):
        ComfortNoiseDecoder().decode(b"")
