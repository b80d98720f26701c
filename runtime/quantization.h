// float32 -> QASYMM8 with rounding to nearest: the 8-bit engine's one quantization of its input.
// ACL 20.08's NEQuantizationLayer truncates on armv7 (vcvtq_s32_f32; only its aarch64 path rounds, vcvtnq), so half
// of all inputs land one step low, and a first convolution with large weights turns that into errors of ten steps
// and more against TFLite, which rounds (found comparing a fully 8-bit TFLite model layer by layer).
#pragma once

#include "arm_compute/core/ITensor.h"
#include "arm_compute/core/Types.h"
#include "arm_compute/runtime/IFunction.h"
#include "arm_compute/runtime/Tensor.h"

namespace engine
{
/** Calls row(src, dst, width) with byte pointers to every row of two 3-D tensors of the same shape, each row at its
 *  tensor's strides (the output may be a channel range of a concatenated tensor); when the rows of both lie back to
 *  back, once with the whole tensor as one row. */
template <typename Row>
void for_each_row(const arm_compute::ITensor &input, arm_compute::ITensor &output, Row &&row)
{
    const arm_compute::ITensorInfo &in = *input.info(), &out = *output.info();
    const auto packed = [&](const arm_compute::ITensorInfo &info) {
        return info.strides_in_bytes()[1] == info.element_size() * in.dimension(0)
               && info.strides_in_bytes()[2] == info.element_size() * in.dimension(0) * in.dimension(1);
    };
    const bool     dense  = packed(in) && packed(out);
    const size_t   width  = dense ? in.tensor_shape().total_size() : in.dimension(0);
    const size_t   rows   = dense ? 1 : in.dimension(1), planes = dense ? 1 : in.dimension(2);
    const uint8_t *first  = input.buffer() + in.offset_first_element_in_bytes();
    uint8_t       *target = output.buffer() + out.offset_first_element_in_bytes();
    for(size_t z = 0; z < planes; ++z)
    {
        for(size_t y = 0; y < rows; ++y)
        {
            row(first + z * in.strides_in_bytes()[2] + y * in.strides_in_bytes()[1], target + z * out.strides_in_bytes()[2] + y * out.strides_in_bytes()[1], width);
        }
    }
}

class Quantization : public arm_compute::IFunction
{
public:
    static arm_compute::Status validate(const arm_compute::ITensorInfo *input, const arm_compute::ITensorInfo *output);
    void configure(arm_compute::ITensor *input, arm_compute::ITensor *output);
    void run() override;

private:
    arm_compute::ITensor *_input{ nullptr };
    arm_compute::ITensor *_output{ nullptr };
};
} // namespace engine
