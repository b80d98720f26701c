// Global average pooling of a QASYMM8 NCHW or NHWC tensor into one value per channel, with the same quantization (the
// mean of equally scaled values needs no rescaling): a per-channel sum of bytes with NEON pairwise additions.
// ACL 20.08's NEPoolingLayer takes a generic path for this on armv7: 5.3 M guest instructions for SqueezeNet
// v1.1's 1000 x 13 x 13 pool10, more than its float32 pooling (3.2 M); this needs a few hundred thousand.
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
    void run_nhwc();

    arm_compute::ITensor *_input{ nullptr };
    arm_compute::ITensor *_output{ nullptr };
};
} // namespace engine
