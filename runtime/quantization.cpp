#include "quantization.h"

#include "arm_compute/core/Error.h"

#include <arm_neon.h>
#include <cmath>

using namespace arm_compute;

namespace engine
{
Status Quantization::validate(const ITensorInfo *input, const ITensorInfo *output)
{
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_type() != DataType::F32 || output->data_type() != DataType::QASYMM8, "F32 to QASYMM8 only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->tensor_shape() != output->tensor_shape() || input->data_layout() != output->data_layout(), "input and output must have the same shape and layout");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->num_dimensions() > 3, "at most 3 dimensions");
    return Status{};
}

void Quantization::configure(ITensor *input, ITensor *output)
{
    ARM_COMPUTE_ERROR_THROW_ON(validate(input->info(), output->info()));
    _input  = input;
    _output = output;
}

void Quantization::run()
{
    const UniformQuantizationInfo q = _output->info()->quantization_info().uniform();
    const float inverse = 1.f / q.scale;
    // x / scale + offset + 0.5, truncated: rounding to nearest (halves up) for every value that is not clamped to 0
    const float32x4_t base   = vdupq_n_f32(static_cast<float>(q.offset) + 0.5f);
    const float32x4_t factor = vdupq_n_f32(inverse);
    for_each_row(*_input, *_output, [&](const uint8_t *src_bytes, uint8_t *dst, size_t width) {
        const float *src = reinterpret_cast<const float *>(src_bytes);
        size_t       x   = 0;
        for(; x + 8 <= width; x += 8)
        {
            const int32x4_t a = vcvtq_s32_f32(vmlaq_f32(base, vld1q_f32(src + x), factor));
            const int32x4_t b = vcvtq_s32_f32(vmlaq_f32(base, vld1q_f32(src + x + 4), factor));
            vst1_u8(dst + x, vqmovun_s16(vcombine_s16(vqmovn_s32(a), vqmovn_s32(b))));
        }
        for(; x < width; ++x)
        {
            const float v = std::floor(src[x] * inverse + static_cast<float>(q.offset) + 0.5f);
            dst[x]        = static_cast<uint8_t>(v < 0.f ? 0.f : (v > 255.f ? 255.f : v));
        }
    });
}
} // namespace engine
