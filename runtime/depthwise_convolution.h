// A float32 NHWC depthwise convolution (one filter per channel: depth multiplier 1) with a 3x3 or 5x5 kernel,
// stride 1 or 2, any per-side padding, the bias and a fused ReLU / bounded ReLU applied before the store.
// Channels go 4 at a time (one quad register); for a group of 4 neighbouring output pixels of a row, each window
// row's input columns (S * 3 + K of them: 6 for 3x3/1, 9 for 3x3/2, 8 for 5x5/1, 11 for 5x5/2) are loaded once
// into registers and every tap (its 4 channels, packed once per block of 4 channels) is loaded once and multiplied
// into the 4 accumulators (armv7: one inline-assembly loop over the blocks of channels, a window row's taps in one
// vldmia): 90 instructions per block for 3x3/1 (144 multiply-accumulates), 0.54-0.94 per multiply-accumulate on
// EfficientNet-Lite0's layers with the borders, against ACL 20.08's 1.5 (NEDepthwiseConvolutionLayer).
// Groups whose windows cross the padding or the input's end read a zero-padded copy of their windows (all whole
// blocks of channels; 32 floats per vldmia / vstmia pair), with the same loop; a row of fewer than 4 pixels is
// stored through 4 private pixels, and the channel tail (C % 4) goes through a small copy of its own. The last
// group of a row overlaps the one before (the same values written twice) when the width is not a multiple of 4.
// Input and output pixels may lie at any strides (whole floats): the output can be a channel range of a wider NHWC
// tensor. Output rows are split among the scheduler's threads.
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
class DepthwiseConvolution : public arm_compute::IFunction
{
public:
    /** The memory manager is accepted for the generated code's uniformity; nothing is stored between layers. */
    explicit DepthwiseConvolution(std::shared_ptr<arm_compute::IMemoryManager> memory_manager = nullptr);

    /** input C x W x H (NHWC), weights C x Kw x Kh (NHWC, one filter per channel), biases C (or none), output
     *  C x W' x H' (NHWC, floor rounding). */
    static arm_compute::Status validate(const arm_compute::ITensorInfo *input, const arm_compute::ITensorInfo *weights, const arm_compute::ITensorInfo *biases,
                                        const arm_compute::ITensorInfo *output, const arm_compute::PadStrideInfo &conv_info,
                                        const arm_compute::ActivationLayerInfo &act = arm_compute::ActivationLayerInfo());
    void configure(arm_compute::ITensor *input, arm_compute::ITensor *weights, arm_compute::ITensor *biases, arm_compute::ITensor *output,
                   const arm_compute::PadStrideInfo &conv_info, const arm_compute::ActivationLayerInfo &act = arm_compute::ActivationLayerInfo());
    /** Packs the weights and biases (after they are loaded): per block of 4 channels, Kh x Kw taps of 4 floats. */
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
    size_t                     _kernel{ 0 };
    bool                       _prepared{ false };
    std::vector<float>         _packed_weights, _bias;
};
} // namespace engine
