// The NEON pieces both 8-bit convolutions share (engine::QuantizedConvolution's 8-bit-product kernel and
// engine::QuantizedConvolutionNhwc): 16 signed-byte products per step accumulated in s32 lanes, the lanes of four
// accumulators summed, and the output stage of four sums stored as bytes.
#pragma once

#include <arm_neon.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace engine
{
namespace int8
{
/** The four lanes of each accumulator summed: [sum a, sum b, sum c, sum d]. */
inline int32x4_t lane_sums(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d)
{
    const int32x2_t ab = vpadd_s32(vpadd_s32(vget_low_s32(a), vget_high_s32(a)), vpadd_s32(vget_low_s32(b), vget_high_s32(b)));
    const int32x2_t cd = vpadd_s32(vpadd_s32(vget_low_s32(c), vget_high_s32(c)), vpadd_s32(vget_low_s32(d), vget_high_s32(d)));
    return vcombine_s32(ab, cd);
}

/** acc += the 16 products of two rows of 16 signed bytes, paired into s16 lanes first (|2 x 127 x 128| fits). */
inline int32x4_t dot16(int32x4_t acc, int8x16_t w, int8x16_t x)
{
    return vpadalq_s16(acc, vmlal_s8(vmull_s8(vget_low_s8(w), vget_low_s8(x)), vget_high_s8(w), vget_high_s8(x)));
}

/** One output stage's per-lane factors, as TFLite's reference kernels apply them (MultiplyByQuantizedMultiplier):
 *  a Q31 multiplier, a left shift (>= 0) and a right shift given as a negative shift (<= 0), per channel. */
struct Scaling
{
    int32x4_t multiplier;
    int32x4_t left;
    int32x4_t right;
};

/** x times a Q31 multiplier keeping the doubled product's high half rounded (vqrdmulh computes what gemmlowp's
 *  SaturatingRoundingDoublingHighMul does), then divided by 2^-right rounding halves away from zero (vrshl rounds
 *  halves up, so negative values are lowered by one first where right < 0). */
inline int32x4_t scaled_down(int32x4_t x, int32x4_t multiplier, int32x4_t right)
{
    const int32x4_t high = vqrdmulhq_s32(x, multiplier);
    // high + (high & right) >> 31: -1 where high < 0 and right < 0 (no overflow: vqrdmulh's result is above -2^31)
    return vrshlq_s32(vsraq_n_s32(high, vandq_s32(high, right), 31), right);
}

/** TFLite's MultiplyByQuantizedMultiplier: x * 2^left, then scaled_down. */
inline int32x4_t scaled(int32x4_t x, const Scaling &s)
{
    return scaled_down(vshlq_s32(x, s.left), s.multiplier, s.right);
}

/** (sums + bias) scaled, + output zero point, clamped to [low, high] (within 0..255): four values as u16 lanes. */
inline uint16x4_t requantized(int32x4_t sums, int32x4_t bias, const Scaling &s, int32x4_t zero, int32x4_t low, int32x4_t high)
{
    const int32x4_t y = vminq_s32(vmaxq_s32(vaddq_s32(scaled(vaddq_s32(sums, bias), s), zero), low), high);
    return vreinterpret_u16_s16(vmovn_s32(y));
}

/** requantized() as bytes: all four at dst in one unaligned store when n == 4, else the first n. */
inline void store_requantized(int32x4_t sums, int32x4_t bias, const Scaling &s, int32x4_t zero, int32x4_t low, int32x4_t high, uint8_t *dst, size_t n)
{
    const uint16x4_t q     = requantized(sums, bias, s, zero, low, high);
    const uint32x2_t bytes = vreinterpret_u32_u8(vmovn_u16(vcombine_u16(q, q)));
    if(n == 4)
    {
        const uint32_t word = vget_lane_u32(bytes, 0);
        std::memcpy(dst, &word, sizeof(word));
    }
    else
    {
        uint8_t tail[8];
        vst1_u32(reinterpret_cast<uint32_t *>(tail), bytes);
        std::memcpy(dst, tail, n);
    }
}
} // namespace int8
} // namespace engine
