"""TFLite's reference requantization in integer numpy, written from its documented arithmetic (QuantizeMultiplier,
MultiplyByQuantizedMultiplier: SaturatingRoundingDoublingHighMul then RoundingDivideByPOT), for checking our 8-bit
kernels: input scale x weight scale / output scale (float32 scales, in double) as a 31-bit significand and a power
of two; acc x 2^left; the doubled product's high 32 bits rounded to nearest (halves up); divided by 2^right
rounding halves away from zero."""

from __future__ import annotations

import numpy as np


def quantized_multiplier(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(significand, exponent) with real = significand x 2^(exponent - 31); (0, 0) below 2^-32."""
    real = np.atleast_1d(np.asarray(real, np.float64))
    fraction, exponent = np.frexp(real)
    significand = np.round(fraction * 2.0 ** 31).astype(np.int64)
    carry = significand == 2 ** 31
    significand[carry] //= 2
    exponent = exponent + carry
    dead = (real == 0) | (exponent < -31)
    return np.where(dead, 0, significand), np.where(dead, 0, exponent)


def multiply(acc: np.ndarray, real: np.ndarray) -> np.ndarray:
    """acc x real as TFLite's MultiplyByQuantizedMultiplier computes it (real broadcast against acc)."""
    significand, exponent = quantized_multiplier(real)
    return fixed_point(acc, significand.reshape(np.shape(real)), exponent.reshape(np.shape(real)))


def fixed_point(acc: np.ndarray, significand: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """MultiplyByQuantizedMultiplier(acc, significand, exponent)."""
    product = np.asarray(acc, np.int64) * 2 ** np.maximum(exponent, 0) * significand
    high = (product + 2 ** 30) >> 31
    right = np.maximum(-exponent, 0)
    mask = (np.int64(1) << right) - 1
    return (high >> right) + ((high & mask) > (mask >> 1) + (high < 0))


def requantize(acc: np.ndarray, in_scale: float, weight_scales: np.ndarray, out_scale: float, out_offset: int,
               relu: bool) -> np.ndarray:
    """A convolution's int32 sums (channels first) -> QASYMM8 integers: scaled per channel, + output zero point,
    clamped to [zero point if relu else 0, 255]."""
    f32 = np.float32
    real = float(f32(in_scale)) * np.asarray(weight_scales, f32).astype(np.float64) / float(f32(out_scale))
    y = multiply(acc, real.reshape(-1, *[1] * (np.ndim(acc) - 1))) + out_offset
    return np.clip(y, out_offset if relu else 0, 255)


def add(a: np.ndarray, qa: tuple[float, int], b: np.ndarray, qb: tuple[float, int], qo: tuple[float, int]) -> np.ndarray:
    """TFLite's reference 8-bit ADD on QASYMM8 integers with (scale, offset) each: both inputs minus their offsets,
    shifted left 20 bits, each times (its scale / twice the larger input scale), summed, times (twice the larger
    input scale / (2^20 x output scale)), + output offset, clamped to 0..255."""
    scale_a, scale_b, scale_o = (float(np.float32(q[0])) for q in (qa, qb, qo))
    twice = 2.0 * max(scale_a, scale_b)
    xa = (np.asarray(a, np.int64) - qa[1]) << 20
    xb = (np.asarray(b, np.int64) - qb[1]) << 20
    total = multiply(xa, np.float64(scale_a / twice)) + multiply(xb, np.float64(scale_b / twice))
    return np.clip(multiply(total, np.float64(twice / (2 ** 20 * scale_o))) + qo[1], 0, 255)


def mean(q: np.ndarray, qi: tuple[float, int], qo: tuple[float, int]) -> np.ndarray:
    """TFLite's reference 8-bit MEAN over the last two axes of (C, H, W) QASYMM8 integers to a quantization of its
    own: (sum - count x input offset) times the multiplier of input scale / output scale with 1 / count folded in
    (its significand shifted left by floor(log2 count), at most 32 and 31 + its exponent, divided by count), + output
    offset, clamped."""
    count = q.shape[1] * q.shape[2]
    significand, exponent = (int(v[0]) for v in
                             quantized_multiplier(float(np.float32(qi[0])) / float(np.float32(qo[0]))))
    shift = min(count.bit_length() - 1, 32, 31 + exponent)
    acc = np.asarray(q, np.int64).sum(axis=(1, 2)) - qi[1] * count
    folded = fixed_point(acc, np.int64((significand << shift) // count), np.int64(exponent - shift))
    return np.clip(folded + qo[1], 0, 255)
