"""Audio for the stand-in: 16-bit PCM mono 22050 Hz WAV sine tones, generated in chunks.

Any size is streamed from one precomputed block of about 64 KiB per tone, so a 100 MB preview costs no
more memory than a one-second one. Each tone's period divides its block exactly, so consecutive blocks
join without a click. Previews of one run sound different: preview ``i`` plays ``TONES_HZ[i % 3]``
(about 345, 459 and 276 Hz), so a test (or a person) can tell from a kept file which preview it was.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from functools import cache

RATE = 22050
CHANNELS = 1
SAMPLE_BYTES = 2
HEADER_BYTES = 44
CHUNK_BYTES = 64 * 1024

#: Samples per sine cycle of each tone; each divides its block (see ``_block``).
_PERIODS = (64, 48, 80)
#: The pitch of each tone, in Hz.
TONES_HZ = tuple(RATE / period for period in _PERIODS)


@cache
def _block(tone: int) -> bytes:
    """About 64 KiB of samples of one tone: a whole number of its cycles."""
    period = _PERIODS[tone % len(_PERIODS)]
    cycle = struct.pack(f"<{period}h", *(round(9830 * math.sin(2 * math.pi * i / period)) for i in range(period)))
    return cycle * (CHUNK_BYTES // len(cycle))


def wav_header(data_bytes: int) -> bytes:
    """The 44-byte RIFF/WAVE header of a PCM file holding ``data_bytes`` bytes of samples."""
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        CHANNELS,
        RATE,
        RATE * CHANNELS * SAMPLE_BYTES,
        CHANNELS * SAMPLE_BYTES,
        8 * SAMPLE_BYTES,
        b"data",
        data_bytes,
    )


def data_bytes_for_seconds(seconds: float) -> int:
    """Bytes of samples in a tone lasting ``seconds``."""
    return max(0, round(seconds * RATE)) * SAMPLE_BYTES * CHANNELS


def data_bytes_for_size(total_bytes: int) -> int:
    """Bytes of samples in a WAV file of about ``total_bytes`` (a whole number of samples)."""
    return max(0, total_bytes - HEADER_BYTES) // SAMPLE_BYTES * SAMPLE_BYTES


def wav_chunks(data_bytes: int, tone: int = 0) -> Iterator[bytes]:
    """The header, then the samples of tone ``tone`` in blocks of at most 64 KiB."""
    yield wav_header(data_bytes)
    block = _block(tone)
    full, rest = divmod(data_bytes, len(block))
    for _ in range(full):
        yield block
    if rest:
        yield block[:rest]
