"""Preview audio for the stand-in: a 16-bit PCM mono 22050 Hz WAV sine tone, generated in chunks.

Any size is streamed from one precomputed 64 KiB block, so a 100 MB preview costs no more memory
than a one-second one. The tone's period (64 samples, about 344.5 Hz) divides the block exactly,
so consecutive blocks join without a click.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator

RATE = 22050
CHANNELS = 1
SAMPLE_BYTES = 2
HEADER_BYTES = 44
CHUNK_BYTES = 64 * 1024

_PERIOD = 64  # samples per sine cycle; divides CHUNK_BYTES // SAMPLE_BYTES
_CYCLE = struct.pack(f"<{_PERIOD}h", *(round(9830 * math.sin(2 * math.pi * i / _PERIOD)) for i in range(_PERIOD)))
_CHUNK = _CYCLE * (CHUNK_BYTES // len(_CYCLE))


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


def wav_chunks(data_bytes: int) -> Iterator[bytes]:
    """The header, then the samples in blocks of at most 64 KiB."""
    yield wav_header(data_bytes)
    full, rest = divmod(data_bytes, CHUNK_BYTES)
    for _ in range(full):
        yield _CHUNK
    if rest:
        yield _CHUNK[:rest]
