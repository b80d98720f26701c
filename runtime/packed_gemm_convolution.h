// A float32 NHWC convolution as one matrix product on packed operands: Y[pixels x Cout] = X[pixels x K] . W[K x
// Cout] with K = kernel height x width x Cin, run by the shared 4 x 8 register-blocked kernel
// (runtime/gemm_micro_kernel.h) with the bias in the accumulators' start and the activation (ReLU, bounded ReLU)
// in its store. W is packed once, at prepare() (the weights are constant); X is packed per panel of 4 output
// pixels: for a 1x1, stride-1, unpadded convolution a pixel's row of X is its NHWC channel vector, read in place;
// otherwise (any kernel, stride, padding; e.g. conv1) the panel's im2col rows are gathered first, zeros for
// padding, so no im2col matrix is ever stored. Output pixels may lie at any strides (a channel view of a wider
// tensor included): 4 pixels evenly spaced and 8 whole channels are stored straight from the registers, the
// rest through a small block. Panels are split among the scheduler's threads. A QASYMM8 output (a float32 layer
// inside an 8-bit network) gets its codes from the kernel's store (gemm::OutputGrid: 1 / scale folded into the
// packed weights and bias, the zero point plus a half into the bias), as engine::Quantization would write them.
//
// Why: in NHWC a 1x1 convolution is already the plain matrix product, yet ACL 20.08's NEGEMMConvolutionLayer
// costs about 0.42 guest instructions per multiply-accumulate on SqueezeNet (conv10: 36.6 M for 86.5 M MACs);
// this kernel's inner loop needs 0.31.
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
class PackedGemmConvolution : public arm_compute::IFunction
{
public:
    /** The memory manager is accepted for the generated code's uniformity; the panels are small and private. */
    explicit PackedGemmConvolution(std::shared_ptr<arm_compute::IMemoryManager> memory_manager = nullptr);

    static arm_compute::Status validate(const arm_compute::ITensorInfo *input, const arm_compute::ITensorInfo *weights, const arm_compute::ITensorInfo *biases,
                                        const arm_compute::ITensorInfo *output, const arm_compute::PadStrideInfo &conv_info,
                                        const arm_compute::ActivationLayerInfo &act = arm_compute::ActivationLayerInfo());
    void configure(arm_compute::ITensor *input, arm_compute::ITensor *weights, arm_compute::ITensor *biases, arm_compute::ITensor *output,
                   const arm_compute::PadStrideInfo &conv_info, const arm_compute::ActivationLayerInfo &act = arm_compute::ActivationLayerInfo());
    /** Packs the weights and biases (after they are loaded). */
    void prepare() override;
    void run() override;

private:
    /** The (panel of kRows output pixels, block of kCols filters) pairs [first, end), numbered panel by panel;
     *  Out: float, or uint8_t for a QASYMM8 output's codes. */
    template <typename Out>
    void panels(size_t first, size_t end, std::vector<float> &buffer) const;

    arm_compute::ITensor      *_input{ nullptr };
    arm_compute::ITensor      *_weights{ nullptr };
    arm_compute::ITensor      *_biases{ nullptr };
    arm_compute::ITensor      *_output{ nullptr };
    arm_compute::PadStrideInfo _conv_info{};
    gemm::Clamp                _clamp{};
    gemm::OutputGrid           _grid{}; // a QASYMM8 output's
    size_t                     _kernel_w{ 0 }, _kernel_h{ 0 }, _k{ 0 }, _k_blocks{ 0 };
    bool                       _in_place{ false }; // a pixel's row of X is its input vector
    bool                       _prepared{ false };
    std::vector<float>              _packed_weights, _bias;
    std::vector<std::vector<float>> _buffers; // one per workload
};
} // namespace engine
