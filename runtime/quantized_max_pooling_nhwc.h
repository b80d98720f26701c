// Max pooling of a QASYMM8 NHWC tensor (input and output share one quantization: the maximum of the codes is the
// code of the maximum), with engine::MaxPoolingNhwc's rows (runtime/max_pooling_window.h): the 3x3 stride-2 windows
// inside the input take the separable path 32 channels at a time (`vmax.u8` on two q registers), then 16; other and
// clipped windows 16 channels per load and `vmax.u8`. ACL 20.08's QASYMM8 NHWC pooling cost 7.2 M guest
// instructions on SqueezeNet v1.1's pool1 and 3.5 M on pool3 (128 x 27 x 27 outputs); one load and maximum per
// window cell 0.62 M on pool3; the separable path 0.10 M (v1.0's pool1, 96 x 55 x 55 outputs: 1.84 -> 0.20 M, now
// below float32's 0.78 M). Output rows are split among the scheduler's threads.
#pragma once

#include "arm_compute/core/ITensor.h"
#include "arm_compute/core/Types.h"
#include "arm_compute/runtime/IFunction.h"

namespace engine
{
class QuantizedMaxPoolingNhwc : public arm_compute::IFunction
{
public:
    static arm_compute::Status validate(const arm_compute::ITensorInfo *input, const arm_compute::ITensorInfo *output, const arm_compute::PoolingLayerInfo &info);
    void configure(arm_compute::ITensor *input, arm_compute::ITensor *output, const arm_compute::PoolingLayerInfo &info);
    void run() override;

private:
    arm_compute::ITensor      *_input{ nullptr };
    arm_compute::ITensor      *_output{ nullptr };
    arm_compute::PadStrideInfo _pad_stride{};
    arm_compute::Size2D        _pool{};
};
} // namespace engine
