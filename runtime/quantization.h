// float32 -> QASYMM8 with rounding to nearest: the 8-bit engine's one quantization of its input, and the conversion
// after each layer a mixed-precision build keeps in float32. ACL 20.08's NEQuantizationLayer truncates on armv7
// (vcvtq_s32_f32; only its aarch64 path rounds, vcvtnq), so half of all inputs land one step low, and a first
// convolution with large weights turns that into errors of ten steps and more against TFLite, which rounds (found
// comparing a fully 8-bit TFLite model layer by layer).
// Cost (guest instructions, armv7): 16 values per loop iteration of 23 instructions (two 8-float loads, 4 x vmla +
// vcvt + vqmovn, 2 x vqmovun, one 16-byte store), about 1.45 per value; rows merged by engine::for_each_row
// (tensor_rows.h): a dense tensor is one row, a plane whose rows lie back to back one row, so per-row work is paid
// only where the output is a channel range of a concatenated tensor (e.g. a fire module's expand layer, one row of
// 64 values per pixel).
#pragma once

#include "arm_compute/core/ITensor.h"
#include "arm_compute/core/Types.h"
#include "arm_compute/runtime/IFunction.h"
#include "arm_compute/runtime/Tensor.h"

namespace engine
{
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
