"""G.711 mu-law and A-law in numpy: the ITU-T G.711 segment encoders as in the reference C
(Sun Microsystems' g711.c, which CPython's audioop uses), vectorised over int16 arrays.

`lin2ulaw`/`lin2alaw` take 16-bit linear PCM (int16) and return the 8-bit codes (uint8);
`ulaw2lin`/`alaw2lin` return int16. Bit-exact with audioop.lin2ulaw/ulaw2lin/lin2alaw/alaw2lin
on every input (tests/test_recipe.py checks all 65536 samples when audioop exists).
"""

from __future__ import annotations

import numpy as np

_SEG_UEND = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_SEG_AEND = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)
_BIAS = 0x84
_CLIP = 8159  # 14-bit magnitude clip of the mu-law encoder


def _segment(val: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Index of the first segment end >= val (8 when above all)."""
    return np.searchsorted(ends, val, side="left").astype(np.int32)


def lin2ulaw(pcm: np.ndarray) -> np.ndarray:
    x = np.asarray(pcm, dtype=np.int16).astype(np.int32) >> 2  # 14-bit
    mask = np.where(x < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(x), _CLIP) + (_BIAS >> 2)
    seg = _segment(mag, _SEG_UEND)
    code = (np.minimum(seg, 7) << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0xF)
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def ulaw2lin(code: np.ndarray) -> np.ndarray:
    u = (~np.asarray(code, dtype=np.uint8)).astype(np.int32)
    t = (((u & 0x0F) << 3) + _BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _BIAS - t, t - _BIAS).astype(np.int16)


def lin2alaw(pcm: np.ndarray) -> np.ndarray:
    x = np.asarray(pcm, dtype=np.int16).astype(np.int32) >> 3  # 13-bit
    neg = x < 0
    mask = np.where(neg, 0x55, 0xD5)
    mag = np.where(neg, -x - 1, x)
    seg = _segment(mag, _SEG_AEND)
    s7 = np.minimum(seg, 7)
    quant = np.where(s7 < 2, mag >> 1, mag >> s7) & 0x0F
    code = np.where(seg >= 8, 0x7F, (s7 << 4) | quant)
    return (code ^ mask).astype(np.uint8)


def alaw2lin(code: np.ndarray) -> np.ndarray:
    a = np.asarray(code, dtype=np.uint8).astype(np.int32) ^ 0x55
    t = a & 0x0F
    seg = (a & 0x70) >> 4
    t = np.where(seg > 0, (2 * t + 1 + 32) << (seg + 2), (2 * t + 1) << 3)
    return np.where(a & 0x80, t, -t).astype(np.int16)


def float_to_int16(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(audio, dtype=np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def round_trip(audio: np.ndarray, law: str) -> np.ndarray:
    """float audio in [-1, 1] -> 16-bit -> G.711 code -> 16-bit -> float32 (same rate)."""
    pcm = float_to_int16(audio)
    if law == "ulaw":
        out = ulaw2lin(lin2ulaw(pcm))
    elif law == "alaw":
        out = alaw2lin(lin2alaw(pcm))
    else:
        raise ValueError(f"unknown G.711 law {law!r} (ulaw or alaw)")
    return out.astype(np.float32) / 32768.0
