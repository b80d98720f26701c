// Max or average pooling with dilated windows (ONNX MaxPool / AveragePool with dilations), float32, NCHW or NHWC.
// ACL 20.08's pooling has no dilation. Window (oy, ox) reads rows oy * stride_y - pad_top + i * dilation_y and columns
// likewise, for i < kernel; cells outside the input never win a max and are left out of a mean, except, with
// count_include_pad, the ones within the declared padding, which count as zeros (ONNX's rule). The output's size
// (rounding up or down) is the output tensor's. Channels are split among the scheduler's threads.
#pragma once

#include "arm_compute/core/Types.h"
#include "arm_compute/runtime/IFunction.h"
#include "arm_compute/runtime/Tensor.h"

namespace engine
{
struct DilatedPoolingInfo
{
    bool         max;               // max pooling, else average
    unsigned int kernel_x, kernel_y;
    unsigned int stride_x, stride_y;
    unsigned int pad_left, pad_right, pad_top, pad_bottom;
    unsigned int dilation_x, dilation_y;
    bool         count_include_pad; // average: the declared padding counts in the divisor
};

class DilatedPooling : public arm_compute::IFunction
{
public:
    static arm_compute::Status validate(const arm_compute::ITensorInfo *input, const arm_compute::ITensorInfo *output, const DilatedPoolingInfo &info);
    void configure(arm_compute::ITensor *input, arm_compute::ITensor *output, const DilatedPoolingInfo &info);
    void run() override;

private:
    void channels(size_t first, size_t end) const;

    arm_compute::ITensor *_input{ nullptr };
    arm_compute::ITensor *_output{ nullptr };
    DilatedPoolingInfo    _info{};
};
} // namespace engine
