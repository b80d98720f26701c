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

/** (sums + bias) * multiplier + zero, clamped to [low, high] (zero carries + 0.5: the conversion truncates), as
 *  bytes: all four at dst in one unaligned store when n == 4, else the first n. */
inline void store_requantized(int32x4_t sums, int32x4_t bias, float32x4_t multiplier, float32x4_t zero, float32x4_t low, float32x4_t high,
                              uint8_t *dst, size_t n)
{
    float32x4_t y = vmlaq_f32(zero, vcvtq_f32_s32(vaddq_s32(sums, bias)), multiplier);
    y             = vminq_f32(vmaxq_f32(y, low), high);
    const uint16x4_t q     = vmovn_u32(vcvtq_u32_f32(y));
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
