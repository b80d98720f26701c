// A float32 NHWC 3x3 stride-2 convolution of a 3-channel image (a first layer, e.g. SqueezeNet v1.1's conv1),
// computed straight from the image: no im2col rows, no packed panel. For 4 neighbouring output pixels of a row the
// windows' rows are one run of 9 input pixels (27 floats, NHWC); two loads of 16 floats put them in d0-d7 (pixels
// 0-1, then 2-3), and every multiply-accumulate takes its input value as a lane of those registers. The weights
// are packed once (per block of 8 filters: 27 rows of 8), the accumulators (4 pixels x 8 filters, q8-q15) start
// from the bias, and the activation (ReLU, bounded ReLU) is applied before the store: 84 instructions per window
// row and block, 252 + ~20 per 864 multiply-accumulates (0.31), against the packed GEMM's 0.32 plus its gathering
// and packing (conv1: 10.6 M instructions there).
// Groups of 4 pixels whose windows cross the padding are read from a small zero-padded copy; the last group of a
// row overlaps the one before it (same values written twice) when the width is not a multiple of 4. Output pixels
// may lie at any strides (a channel view of a wider tensor included). Output rows are split among threads.
#pragma once

#include "gemm_micro_kernel.h"

#include "arm_compute/core/Types.h"
#include "arm_compute/runtime/IFunction.h"
#include "arm_compute/runtime/IMemoryManager.h"
#include "arm_compute/runtime/Tensor.h"

#include <memory>
#include <vector>

namespace engine
{
class DirectConvolution3x3s2 : public arm_compute::IFunction
{
public:
    /** The memory manager is accepted for the generated code's uniformity; nothing is stored between layers. */
    explicit DirectConvolution3x3s2(std::shared_ptr<arm_compute::IMemoryManager> memory_manager = nullptr);

    static arm_compute::Status validate(const arm_compute::ITensorInfo *input, const arm_compute::ITensorInfo *weights, const arm_compute::ITensorInfo *biases,
                                        const arm_compute::ITensorInfo *output, const arm_compute::PadStrideInfo &conv_info,
                                        const arm_compute::ActivationLayerInfo &act = arm_compute::ActivationLayerInfo());
    void configure(arm_compute::ITensor *input, arm_compute::ITensor *weights, arm_compute::ITensor *biases, arm_compute::ITensor *output,
                   const arm_compute::PadStrideInfo &conv_info, const arm_compute::ActivationLayerInfo &act = arm_compute::ActivationLayerInfo());
    /** Packs the weights and biases (after they are loaded). */
    void prepare() override;
    void run() override;

private:
    void rows(size_t first, size_t end) const;

    arm_compute::ITensor      *_input{ nullptr };
    arm_compute::ITensor      *_weights{ nullptr };
    arm_compute::ITensor      *_biases{ nullptr };
    arm_compute::ITensor      *_output{ nullptr };
    arm_compute::PadStrideInfo _conv_info{};
    gemm::Clamp                _clamp{};
    bool                       _prepared{ false };
    std::vector<float>         _packed_weights, _bias;
};
} // namespace engine
