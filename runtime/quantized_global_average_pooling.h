// Global average pooling of a QASYMM8 NCHW or NHWC tensor into one value per channel: a per-channel sum of bytes with
// NEON pairwise additions. With the input's quantization (the mean of equally scaled values needs no rescaling) the
// sum is divided rounding to nearest; with a quantization of its own (a TFLite MEAN, e.g. of a model quantized by
// TFLite) the mean is requantized as TFLite's reference MEAN does it: (sum - count x input zero point) times the
// fixed-point multiplier of input scale / output scale with 1 / count folded into it (the multiplier shifted left by
// floor(log2 count), at most 32 and at most 31 + its exponent, then divided by count), + output zero point.
// ACL 20.08's NEPoolingLayer takes a generic path for this on armv7: 5.3 M guest instructions for SqueezeNet
// v1.1's 1000 x 13 x 13 pool10, more than its float32 pooling (3.2 M); this 0.14 M in NHWC (16 channels per load
// and two widening additions; 8 channels with a per-pixel counter took 0.37 M).
#pragma once

#include "arm_compute/core/Types.h"
#include "arm_compute/runtime/IFunction.h"
#include "arm_compute/runtime/Tensor.h"

namespace engine
{
class QuantizedGlobalAveragePooling : public arm_compute::IFunction
{
public:
    static arm_compute::Status validate(const arm_compute::ITensorInfo *input, const arm_compute::ITensorInfo *output, const arm_compute::PoolingLayerInfo &info);
    void configure(arm_compute::ITensor *input, arm_compute::ITensor *output, const arm_compute::PoolingLayerInfo &info);
    void run() override;

private:
    void    run_nhwc();
    uint8_t average(uint32_t sum, uint32_t count) const;

    arm_compute::ITensor *_input{ nullptr };
    arm_compute::ITensor *_output{ nullptr };
    bool                  _requantize{ false };
    int32_t               _input_offset{ 0 }, _output_offset{ 0 };
    int32_t               _multiplier{ 0 }, _left{ 0 }, _right{ 0 }; // (input scale / output scale) / count, fixed point
};
} // namespace engine
