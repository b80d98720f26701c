#include "quantization.h"

#include "tensor_rows.h"

#include "arm_compute/core/Error.h"

#include <arm_neon.h>

using namespace arm_compute;

namespace engine
{
Status Quantization::validate(const ITensorInfo *input, const ITensorInfo *output)
{
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_type() != DataType::F32 || output->data_type() != DataType::QASYMM8, "F32 to QASYMM8 only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->tensor_shape() != output->tensor_shape() || input->data_layout() != output->data_layout(), "input and output must have the same shape and layout");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->num_dimensions() > 4, "at most 4 dimensions");
    return Status{};
}

void Quantization::configure(ITensor *input, ITensor *output)
{
    ARM_COMPUTE_ERROR_THROW_ON(validate(input->info(), output->info()));
    _input  = input;
    _output = output;
}

namespace
{
/** dst[0, n) = QASYMM8 of src[0, n): x x inverse + base in float32 (base = offset + 0.5), truncated, saturated to
 *  [0, 255]; the same arithmetic (a non-fused multiply-add) in every path, so a value's result does not depend on
 *  where it lies in its row. */
inline void quantize_row(const float *src, uint8_t *dst, size_t n, float32x4_t base, float32x4_t factor)
{
#if !defined(__aarch64__)
    if(n >= 16)
    {
        size_t blocks = n / 16;
        asm volatile("1:\n"
                     "vld1.32 {d0-d3}, [%[s]]!\n"
                     "vld1.32 {d4-d7}, [%[s]]!\n"
                     "vmov q8, %q[base]\n"
                     "vmov q9, %q[base]\n"
                     "vmov q10, %q[base]\n"
                     "vmov q11, %q[base]\n"
                     "vmla.f32 q8, q0, %q[factor]\n"
                     "vmla.f32 q9, q1, %q[factor]\n"
                     "vmla.f32 q10, q2, %q[factor]\n"
                     "vmla.f32 q11, q3, %q[factor]\n"
                     "vcvt.s32.f32 q8, q8\n"
                     "vcvt.s32.f32 q9, q9\n"
                     "vcvt.s32.f32 q10, q10\n"
                     "vcvt.s32.f32 q11, q11\n"
                     "vqmovn.s32 d0, q8\n"
                     "vqmovn.s32 d1, q9\n"
                     "vqmovn.s32 d2, q10\n"
                     "vqmovn.s32 d3, q11\n"
                     "vqmovun.s16 d0, q0\n"
                     "vqmovun.s16 d1, q1\n"
                     "vst1.8 {d0-d1}, [%[d]]!\n"
                     "subs %[b], %[b], #1\n"
                     "bne 1b\n"
                     : [s] "+r"(src), [d] "+r"(dst), [b] "+r"(blocks)
                     : [base] "w"(base), [factor] "w"(factor)
                     : "cc", "memory", "q0", "q1", "q2", "q3", "q8", "q9", "q10", "q11");
        n %= 16;
    }
#endif
    for(; n >= 8; n -= 8, src += 8, dst += 8)
    {
        const int32x4_t a = vcvtq_s32_f32(vmlaq_f32(base, vld1q_f32(src), factor));
        const int32x4_t b = vcvtq_s32_f32(vmlaq_f32(base, vld1q_f32(src + 4), factor));
        vst1_u8(dst, vqmovun_s16(vcombine_s16(vqmovn_s32(a), vqmovn_s32(b))));
    }
    const float inverse = vgetq_lane_f32(factor, 0), offset = vgetq_lane_f32(base, 0);
    for(; n > 0; --n)
    {
        // truncating a value below 0 or at 256 and above is what the saturation clamps: the same as the vector path
        const float v = *src++ * inverse + offset;
        *dst++        = !(v > 0.f) ? 0 : v >= 255.f ? 255 : static_cast<uint8_t>(v);
    }
}
} // namespace

void Quantization::run()
{
    const UniformQuantizationInfo q = _output->info()->quantization_info().uniform();
    // x / scale + offset + 0.5, truncated: rounding to nearest (halves up) for every value that is not clamped to 0
    const float32x4_t base   = vdupq_n_f32(static_cast<float>(q.offset) + 0.5f);
    const float32x4_t factor = vdupq_n_f32(1.f / q.scale);
    for_each_row([&](const uint8_t *src, uint8_t *dst, size_t n) { quantize_row(reinterpret_cast<const float *>(src), dst, n, base, factor); },
                 static_cast<const ITensor &>(*_input), *_output);
}
} // namespace engine
