// Element-wise addition of two QASYMM8 tensors into a third, each with its own scale and offset:
//   out = offset_out + (scale_a / scale_out)(a - offset_a) + (scale_b / scale_out)(b - offset_b), saturated,
// in TFLite's reference integer arithmetic (so that a model quantized by TFLite gives its integers): both inputs
// shifted left by 20 bits, each scaled by its fixed-point multiplier (its scale / twice the larger input scale),
// summed, scaled to the output (twice the larger input scale / (2^20 x output scale)), each scaling rounded as
// MultiplyByQuantizedMultiplier rounds.
// ACL 20.08's NEArithmeticAddition on QASYMM8 costs hundreds of guest instructions per element on armv7
// (EfficientNet-Lite0's residual additions: 62 M in 8 bits against 1.2 M in float32); this is about 4.
// Element by element, so any layout, the same for all three tensors (NCHW or NHWC), at any strides, rows merged by
// engine::for_each_row (tensor_rows.h): dense tensors in one row.
#pragma once

#include "arm_compute/core/Types.h"
#include "arm_compute/runtime/IFunction.h"
#include "arm_compute/runtime/Tensor.h"

namespace engine
{
class QuantizedAddition : public arm_compute::IFunction
{
public:
    static arm_compute::Status validate(const arm_compute::ITensorInfo *a, const arm_compute::ITensorInfo *b, const arm_compute::ITensorInfo *output,
                                        arm_compute::ConvertPolicy policy);
    /** Always saturates (the policy is accepted for the same call as NEArithmeticAddition). */
    void configure(arm_compute::ITensor *a, arm_compute::ITensor *b, arm_compute::ITensor *output, arm_compute::ConvertPolicy policy);
    void run() override;

private:
    void add_row(const uint8_t *a, const uint8_t *b, uint8_t *out, size_t n) const;

    arm_compute::ITensor *_a{ nullptr };
    arm_compute::ITensor *_b{ nullptr };
    arm_compute::ITensor *_output{ nullptr };
    int32_t               _offset_a{ 0 }, _offset_b{ 0 }, _offset_out{ 0 };
    int32_t               _multiplier_a{ 0 }, _multiplier_b{ 0 }, _multiplier_out{ 0 };
    int32_t               _shift_a{ 0 }, _shift_b{ 0 }, _shift_out{ 0 }; // right shifts as negative shifts (<= 0)
};
} // namespace engine
