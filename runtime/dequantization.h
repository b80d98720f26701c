// QASYMM8 -> float32, (x - offset) x scale, row by row at any strides: where an 8-bit engine hands a tensor to a
// layer kept in float32 (mixed precision, e.g. SqueezeNet's expand3x3 layers on float Winograd) or to its float
// tail. ACL 20.08's NEDequantizationLayer costs about 70 guest instructions per value on a 1000-value vector; ours
// 16 values per loop iteration of 19 instructions on armv7 (one 16-byte load, 2 x vsubl.u8 for the exact
// difference in 16 bits, 4 x vmovl + vcvt + vmul, two 8-float stores), about 1.2 per value, rows merged by
// engine::for_each_row (tensor_rows.h). Refuses an offset outside [0, 255] (the 16-bit difference).
#pragma once

#include "arm_compute/core/ITensor.h"
#include "arm_compute/core/Types.h"
#include "arm_compute/runtime/IFunction.h"

namespace engine
{
class Dequantization : public arm_compute::IFunction
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
