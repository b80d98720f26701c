#include "dequantization.h"

#include "quantization.h"

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
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->num_dimensions() > 3, "at most 3 dimensions");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->strides_in_bytes()[0] != 1, "a row's values must lie back to back");
    return Status{};
}

void Dequantization::configure(ITensor *input, ITensor *output)
{
    ARM_COMPUTE_ERROR_THROW_ON(validate(input->info(), output->info()));
    _input  = input;
    _output = output;
}

void Dequantization::run()
{
    const UniformQuantizationInfo q     = _input->info()->quantization_info().uniform();
    const float32x4_t             scale = vdupq_n_f32(q.scale);
    const int32x4_t               zero  = vdupq_n_s32(q.offset);
    for_each_row(*_input, *_output, [&](const uint8_t *src, uint8_t *dst_bytes, size_t width) {
        float *dst = reinterpret_cast<float *>(dst_bytes);
        size_t x   = 0;
        for(; x + 8 <= width; x += 8)
        {
            const uint16x8_t v = vmovl_u8(vld1_u8(src + x));
            const int32x4_t  a = vsubq_s32(vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(v))), zero);
            const int32x4_t  b = vsubq_s32(vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(v))), zero);
            vst1q_f32(dst + x, vmulq_f32(vcvtq_f32_s32(a), scale));
            vst1q_f32(dst + x + 4, vmulq_f32(vcvtq_f32_s32(b), scale));
        }
        for(; x < width; ++x)
        {
            dst[x] = static_cast<float>(static_cast<int32_t>(src[x]) - q.offset) * q.scale;
        }
    });
}
} // namespace engine
