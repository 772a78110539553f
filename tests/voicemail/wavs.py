"""WAV files as Asterisk stores its recordings."""

from __future__ import annotations

import io
import wave


def make_wav(seconds: float, rate: int = 8000) -> bytes:
    """A silent 16-bit mono WAV as Asterisk stores them (44-byte header + 2*rate bytes/s)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * int(seconds * rate))
    return buffer.getvalue()
