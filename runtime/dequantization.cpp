#include "dequantization.h"

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
    const ITensorInfo            &in    = *_input->info();
    const ITensorInfo            &out   = *_output->info();
    const UniformQuantizationInfo q     = in.quantization_info().uniform();
    const float32x4_t             scale = vdupq_n_f32(q.scale);
    const int32x4_t               zero  = vdupq_n_s32(q.offset);
    // Rows at their strides; tensors whose rows lie back to back (both) are one long row.
    const bool    dense  = in.strides_in_bytes()[1] == in.dimension(0) && in.strides_in_bytes()[2] == in.dimension(0) * in.dimension(1)
                       && out.strides_in_bytes()[1] == 4 * in.dimension(0) && out.strides_in_bytes()[2] == 4 * in.dimension(0) * in.dimension(1);
    const size_t  width  = dense ? in.tensor_shape().total_size() : in.dimension(0);
    const size_t  rows   = dense ? 1 : in.dimension(1), planes = dense ? 1 : in.dimension(2);
    const uint8_t *first = _input->buffer() + in.offset_first_element_in_bytes();
    uint8_t       *first_out = _output->buffer() + out.offset_first_element_in_bytes();
    for(size_t z = 0; z < planes; ++z)
    {
        for(size_t y = 0; y < rows; ++y)
        {
            const uint8_t *src = first + z * in.strides_in_bytes()[2] + y * in.strides_in_bytes()[1];
            float         *dst = reinterpret_cast<float *>(first_out + z * out.strides_in_bytes()[2] + y * out.strides_in_bytes()[1]);
            size_t         x   = 0;
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
        }
    }
}
} // namespace engine
