#include "dequantization.h"

#include "tensor_rows.h"

#include "arm_compute/core/Error.h"
#include "arm_compute/core/Helpers.h"

#include <arm_neon.h>

using namespace arm_compute;

namespace engine
{
Status Dequantization::validate(const ITensorInfo *input, const ITensorInfo *output)
{
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_type() != DataType::QASYMM8 || output->data_type() != DataType::F32, "QASYMM8 to F32 only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->tensor_shape() != output->tensor_shape() || input->data_layout() != output->data_layout(), "input and output must have the same shape and layout");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->num_dimensions() > 4, "at most 4 dimensions");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->strides_in_bytes()[0] != 1, "a row's values must lie back to back");
    const int32_t offset = input->quantization_info().uniform().offset;
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(offset < 0 || offset > 255, "a QASYMM8 offset outside [0, 255]");
    return Status{};
}

void Dequantization::configure(ITensor *input, ITensor *output)
{
    ARM_COMPUTE_ERROR_THROW_ON(validate(input->info(), output->info()));
    _input  = input;
    _output = output;
}

namespace
{
/** dst[0, n) = (src[0, n) - offset) x scale: the difference exact in 16 bits (offset in [0, 255]), converted to
 *  float32 and multiplied, in every path. */
inline void dequantize_row(const uint8_t *src, float *dst, size_t n, uint8x8_t zero, float32x4_t scale)
{
#if !defined(__aarch64__)
    if(n >= 16)
    {
        size_t blocks = n / 16;
        asm volatile("1:\n"
                     "vld1.8 {d0-d1}, [%[s]]!\n"
                     "vsubl.u8 q1, d0, %P[zero]\n"
                     "vsubl.u8 q2, d1, %P[zero]\n"
                     "vmovl.s16 q8, d2\n"
                     "vmovl.s16 q9, d3\n"
                     "vmovl.s16 q10, d4\n"
                     "vmovl.s16 q11, d5\n"
                     "vcvt.f32.s32 q8, q8\n"
                     "vcvt.f32.s32 q9, q9\n"
                     "vcvt.f32.s32 q10, q10\n"
                     "vcvt.f32.s32 q11, q11\n"
                     "vmul.f32 q8, q8, %q[scale]\n"
                     "vmul.f32 q9, q9, %q[scale]\n"
                     "vmul.f32 q10, q10, %q[scale]\n"
                     "vmul.f32 q11, q11, %q[scale]\n"
                     "vst1.32 {d16-d19}, [%[d]]!\n"
                     "vst1.32 {d20-d23}, [%[d]]!\n"
                     "subs %[b], %[b], #1\n"
                     "bne 1b\n"
                     : [s] "+r"(src), [d] "+r"(dst), [b] "+r"(blocks)
                     : [zero] "w"(zero), [scale] "w"(scale)
                     : "cc", "memory", "q0", "q1", "q2", "q8", "q9", "q10", "q11");
        n %= 16;
    }
#endif
    for(; n >= 8; n -= 8, src += 8, dst += 8)
    {
        const int16x8_t v = vreinterpretq_s16_u16(vsubl_u8(vld1_u8(src), zero));
        vst1q_f32(dst, vmulq_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(v))), scale));
        vst1q_f32(dst + 4, vmulq_f32(vcvtq_f32_s32(vmovl_s16(vget_high_s16(v))), scale));
    }
    const int32_t offset = vget_lane_u8(zero, 0);
    const float   factor = vgetq_lane_f32(scale, 0);
    for(; n > 0; --n)
    {
        *dst++ = static_cast<float>(static_cast<int32_t>(*src++) - offset) * factor;
    }
}
} // namespace

void Dequantization::run()
{
    const UniformQuantizationInfo q     = _input->info()->quantization_info().uniform();
    const float32x4_t             scale = vdupq_n_f32(q.scale);
    const uint8x8_t               zero  = vdup_n_u8(static_cast<uint8_t>(q.offset));
    for_each_row([&](const uint8_t *src, uint8_t *dst, size_t n) { dequantize_row(src, reinterpret_cast<float *>(dst), n, zero, scale); },
                 static_cast<const ITensor &>(*_input), *_output);
}
} // namespace engine
