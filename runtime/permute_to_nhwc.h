// NCHW -> NHWC for float32 tensors (the engine's input is NCHW; SqueezeNet's first convolution runs in NHWC).
// Per image row, 4 pixels at a time: one vector load per channel plane, then an interleaving store: for 3 channels
// (an image) two vst3 store 4 pixels' 12 values, 6 instructions per 4 pixels with the loop's; for other channel
// counts 4 channels x 4 pixels are transposed in registers and stored as 4 pixel vectors. ACL 20.08's NEPermute
// spends 1.36 M guest instructions on a 3 x 227 x 227 image (8.8 per value); this about 0.1 M. Rows are split
// among the scheduler's threads.
#pragma once

#include "arm_compute/core/Types.h"
#include "arm_compute/runtime/IFunction.h"
#include "arm_compute/runtime/Tensor.h"

namespace engine
{
class PermuteToNhwc : public arm_compute::IFunction
{
public:
    /** perm must be NEPermute's NCHW -> NHWC vector, (2, 0, 1). */
    static arm_compute::Status validate(const arm_compute::ITensorInfo *input, const arm_compute::ITensorInfo *output, const arm_compute::PermutationVector &perm);
    void configure(arm_compute::ITensor *input, arm_compute::ITensor *output, const arm_compute::PermutationVector &perm);
    void run() override;

private:
    void rows(size_t first, size_t end) const;

    arm_compute::ITensor *_input{ nullptr };
    arm_compute::ITensor *_output{ nullptr };
};
} // namespace engine
