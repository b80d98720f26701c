// float32 -> QASYMM8 with rounding to nearest: the 8-bit engine's one quantization of its input, and the conversion
// after each layer a mixed-precision build keeps in float32. ACL 20.08's NEQuantizationLayer truncates on armv7
// (vcvtq_s32_f32; only its aarch64 path rounds, vcvtnq), so half of all inputs land one step low, and a first
// convolution with large weights turns that into errors of ten steps and more against TFLite, which rounds (found
// comparing a fully 8-bit TFLite model layer by layer).
// Cost (guest instructions, armv7): 16 values per loop iteration of 23 instructions (two 8-float loads, 4 x vmla +
// vcvt + vqmovn, 2 x vqmovun, one 16-byte store), about 1.45 per value; a tensor whose rows lie back to back is one
// row, a plane whose rows do is one row, so per-row work is paid only where the output is a channel range of a
// concatenated tensor (e.g. a fire module's expand layer, one row of 64 values per pixel).
#pragma once

#include "arm_compute/core/ITensor.h"
#include "arm_compute/core/Types.h"
#include "arm_compute/runtime/IFunction.h"
#include "arm_compute/runtime/Tensor.h"

namespace engine
{
/** Calls row(src, dst, width) with byte pointers to every row of two 3-D tensors of the same shape, each row at its
 *  tensor's strides (the output may be a channel range of a concatenated tensor). Rows that lie back to back in
 *  both tensors are merged: the whole tensor is one row when both are dense, each plane one row when only its rows
 *  are packed. */
template <typename Row>
void for_each_row(const arm_compute::ITensor &input, arm_compute::ITensor &output, Row &&row)
{
    const arm_compute::ITensorInfo &in = *input.info(), &out = *output.info();
    const size_t   width = in.dimension(0), height = in.dimension(1), depth = in.dimension(2);
    const size_t   in_row = in.strides_in_bytes()[1], in_plane = in.strides_in_bytes()[2];
    const size_t   out_row = out.strides_in_bytes()[1], out_plane = out.strides_in_bytes()[2];
    const bool     rows_packed   = in_row == in.element_size() * width && out_row == out.element_size() * width;
    const bool     planes_packed = rows_packed && in_plane == in_row * height && out_plane == out_row * height;
    const size_t   run    = planes_packed ? width * height * depth : rows_packed ? width * height : width;
    const size_t   rows   = rows_packed ? 1 : height, planes = planes_packed ? 1 : depth;
    const uint8_t *src    = input.buffer() + in.offset_first_element_in_bytes();
    uint8_t       *dst    = output.buffer() + out.offset_first_element_in_bytes();
    for(size_t z = 0; z < planes; ++z, src += in_plane, dst += out_plane)
    {
        const uint8_t *s = src;
        uint8_t       *d = dst;
        for(size_t y = rows; y > 0; --y, s += in_row, d += out_row)
        {
            row(s, d, run);
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
