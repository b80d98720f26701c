// Max pooling of a float32 NHWC tensor: every window position reads 4 channels at a time (they are contiguous in
// NHWC). ACL 20.08's NHWC pooling spends about 115 guest instructions per output value on SqueezeNet's 3x3/2
// pools (23.2 M for v1.1's pool1, against 5.8 M in NCHW). Padding never wins a maximum (ACL's convention too), and
// windows are clipped to the input, so Caffe's and ONNX's rounded-up last windows need no special case.
// The 3x3 stride-2 windows that lie inside the input (all of SqueezeNet's) take a separable path
// (runtime/max_pooling_window.h, shared with the 8-bit pooling): along a row of outputs, 8 channels at a time, each
// input column's maximum over the window's 3 rows is computed once and the window's last column is carried to the
// next window (stride 2), so an output's 8 channels cost 6 loads, 12 maximums and a store: about 0.7 M instructions
// for v1.1's pool1 instead of 4.3 M with a load and maximum per window cell. Output rows are split among the
// scheduler's threads.
#pragma once

#include "arm_compute/core/Types.h"
#include "arm_compute/runtime/IFunction.h"
#include "arm_compute/runtime/Tensor.h"

namespace engine
{
class MaxPoolingNhwc : public arm_compute::IFunction
{
public:
    static arm_compute::Status validate(const arm_compute::ITensorInfo *input, const arm_compute::ITensorInfo *output, const arm_compute::PoolingLayerInfo &info);
    void configure(arm_compute::ITensor *input, arm_compute::ITensor *output, const arm_compute::PoolingLayerInfo &info);
    void run() override;

private:
    arm_compute::ITensor       *_input{ nullptr };
    arm_compute::ITensor       *_output{ nullptr };
    arm_compute::PadStrideInfo  _pad_stride{};
    arm_compute::Size2D         _pool{};
};
} // namespace engine
