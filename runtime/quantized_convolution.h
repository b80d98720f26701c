// An 8-bit convolution on NCHW data that stays NCHW: QASYMM8 activations, int8 weights per output channel
// (QSYMM8_PER_CHANNEL), int32 biases, requantized to QASYMM8 with the activation's clamp in the same pass.
//
// Why not ACL's NEGEMMConvolutionLayer: on armv7, ACL 20.08 has no assembly 8-bit GEMM (that is aarch64 only),
// and its generic path (im2col, interleave, transpose, NEON-intrinsics GEMMLowp, col2im, offset contribution,
// output stage) cost 2.5x the instructions of our float32 engine on SqueezeNet v1.1 (counted: 577 M against
// 229 M). Here the product is Y[Cout x HW] = W[Cout x K] . X[K x HW], where X is the input itself for a 1x1
// convolution (NCHW rows are already the matrix rows) or its im2col rows otherwise. Two inner kernels:
//  - short sums (K < 64): 4 output channels x 8 pixels per step, widening multiply-accumulate by lane
//    (s16 x s16 -> s32) straight on the NCHW rows;
//  - long sums: 8-bit products (s8 x s8 -> s16, two per lane, then pairwise-added into s32), 2 channels x 4
//    pixels x 16 k per step, on X transposed to one row per pixel (8x8 byte transposes) with the activations
//    shifted to signed (x - 128; the shift's share of each sum is folded into the bias), twice the products
//    per instruction of the first kernel.
// The output stage adds the bias (with the input zero point folded in), scales per channel, adds the output
// zero point, clamps (ReLU/ReLU6) and narrows, while the block is still in registers.
#pragma once

#include "arm_compute/core/Types.h"
#include "arm_compute/runtime/IFunction.h"
#include "arm_compute/runtime/IMemoryManager.h"
#include "arm_compute/runtime/MemoryGroup.h"
#include "arm_compute/runtime/Tensor.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace engine
{
/** The output stage both 8-bit convolutions fuse into their stores, in TFLite's reference arithmetic (so that a model
 *  quantized by TFLite gives its integers): acc x multiplier[c] as MultiplyByQuantizedMultiplier computes it (Q31
 *  significand and shifts from input scale x weight scale / output scale in double, as TFLite's QuantizeMultiplier
 *  makes them), + output zero, clamped to [low, high] (0..255, narrowed by a fused ReLU / bounded ReLU in the
 *  output's quantization). */
struct OutputStage
{
    uint8_t              input_zero{ 0 };
    int32_t              output_zero{ 0 };
    int32_t              low{ 0 };
    int32_t              high{ 255 };
    std::vector<int32_t> multiplier;  // Q31 significand per channel (zero-padded)
    std::vector<int32_t> left_shift;  // per channel, >= 0
    std::vector<int32_t> right_shift; // per channel, <= 0 (a negative shift: vrshl's right shift)
};

/** TFLite's QuantizeMultiplier: real = significand x 2^(shift - 31), the significand in [2^30, 2^31) rounded to
 *  nearest (0 for 0 and for reals below 2^-31). */
void quantize_multiplier(double real, int32_t &significand, int &shift);

/** The output stage of input (QASYMM8) * weights (one scale per output channel) -> output, with channels padded
 *  to padded_channels multipliers. */
OutputStage output_stage(const arm_compute::ITensorInfo &input, const arm_compute::ITensorInfo &weights, const arm_compute::ITensorInfo &output,
                         size_t out_channels, size_t padded_channels, const arm_compute::ActivationLayerInfo &act);

class QuantizedConvolution : public arm_compute::IFunction
{
public:
    explicit QuantizedConvolution(std::shared_ptr<arm_compute::IMemoryManager> memory_manager = nullptr);

    static arm_compute::Status validate(const arm_compute::ITensorInfo *input, const arm_compute::ITensorInfo *weights, const arm_compute::ITensorInfo *biases,
                                        const arm_compute::ITensorInfo *output, const arm_compute::PadStrideInfo &conv_info,
                                        const arm_compute::ActivationLayerInfo &act = arm_compute::ActivationLayerInfo());
    void configure(arm_compute::ITensor *input, arm_compute::ITensor *weights, arm_compute::ITensor *biases, arm_compute::ITensor *output,
                   const arm_compute::PadStrideInfo &conv_info, const arm_compute::ActivationLayerInfo &act = arm_compute::ActivationLayerInfo());
    /** Packs the weights (after they are loaded): 4 output channels side by side per k, widened to 16 bits. */
    void prepare() override;
    void run() override;

private:
    /** Rows of X for one run: the input planes (1x1, stride 1, no padding, dense) or im2col rows, whose tail up
     *  to a multiple of 8 pixels holds the input zero point. */
    const uint8_t *columns();
    void           compute_channels(size_t first_block, size_t end_block, const uint8_t *x);
    /** X as one row per pixel of K signed bytes (x - 128), K padded to a multiple of 16. */
    const int8_t *transposed(const uint8_t *x);
    void          compute_dot(size_t first_pair, size_t end_pair, const int8_t *rows);

    arm_compute::ITensor      *_input{ nullptr };
    arm_compute::ITensor      *_weights{ nullptr };
    arm_compute::ITensor      *_biases{ nullptr };
    arm_compute::ITensor      *_output{ nullptr };
    arm_compute::PadStrideInfo _conv_info{};
    arm_compute::MemoryGroup   _memory_group;
    arm_compute::Tensor        _columns; // [K x pixels rounded up to 8] when X is not the input itself
    arm_compute::Tensor        _staging; // [Cout x pixels] when the output planes are not back to back
    arm_compute::Tensor        _rows;    // the long-sum kernel's X: [pixels rounded up to 8 x K rounded up to 16]
    bool                       _dot{ false };
    size_t                     _padded_k{ 0 };
    std::vector<int8_t>        _packed8; // long-sum kernel: per output channel, K padded with zeros
    size_t                     _k{ 0 };
    size_t                     _pixels{ 0 };
    size_t                     _padded_pixels{ 0 };
    size_t                     _out_channels{ 0 };
    bool                       _input_direct{ false };
    bool                       _output_direct{ false };
    uint8_t                    _input_zero{ 0 };
    OutputStage                _stage{};
    std::vector<int16_t>       _packed;     // per block of 4 output channels: K x 4 weights
    std::vector<int32_t>       _bias;       // bias minus input zero point x sum of the channel's weights
    bool                       _prepared{ false };
};
} // namespace engine
