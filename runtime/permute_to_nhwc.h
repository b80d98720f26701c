// NCHW -> NHWC for float32 and QASYMM8 tensors (the engine's input is NCHW; SqueezeNet's first convolution runs in
// NHWC, in 8 bits after the input's quantize when it is an 8-bit layer). Per image row, one vector load per channel
// plane, then an interleaving store: for 3 channels (an image) two vst3.32 store 4 pixels' 12 floats, or one vst3.8
// 8 pixels' 24 codes; for other channel counts, in float32, 4 channels x 4 pixels are transposed in registers and
// stored as 4 pixel vectors, in 8 bits one value at a time. ACL 20.08's NEPermute spends 1.36 M guest instructions
// on a 3 x 227 x 227 float32 image (8.8 per value) and 1.50 M on the same image in 8 bits; this 0.27 M and 0.12 M.
// Rows are split among the scheduler's threads.
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
    arm_compute::ITensor *_input{ nullptr };
    arm_compute::ITensor *_output{ nullptr };
};
} // namespace engine
