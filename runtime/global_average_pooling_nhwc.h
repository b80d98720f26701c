// Global average pooling of a float32 NHWC tensor into one value per channel. In NHWC a pixel's channels are
// contiguous, so 16 channels are summed at a time in four NEON accumulators, one pixel after the other (4 vector
// loads and 4 additions per pixel and 16 channels), then scaled by 1 / pixels; the last channels (fewer than 4)
// are summed one by one. ACL 20.08's NHWC pooling spends about 2.0 M guest instructions on SqueezeNet v1.1's
// 1000 x 13 x 13 pool10; this needs about 0.12 M. Channel blocks are split among the scheduler's threads.
#pragma once

#include "arm_compute/core/Types.h"
#include "arm_compute/runtime/IFunction.h"
#include "arm_compute/runtime/Tensor.h"

namespace engine
{
class GlobalAveragePoolingNhwc : public arm_compute::IFunction
{
public:
    static arm_compute::Status validate(const arm_compute::ITensorInfo *input, const arm_compute::ITensorInfo *output, const arm_compute::PoolingLayerInfo &info);
    void configure(arm_compute::ITensor *input, arm_compute::ITensor *output, const arm_compute::PoolingLayerInfo &info);
    void run() override;

private:
    void channels(size_t first, size_t end) const;

    arm_compute::ITensor *_input{ nullptr };
    arm_compute::ITensor *_output{ nullptr };
};
} // namespace engine
