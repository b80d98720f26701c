// An 8-bit convolution on NHWC data: QASYMM8 activations, int8 weights per output channel (QSYMM8_PER_CHANNEL,
// OHWI), int32 biases, requantized to QASYMM8 with the activation's clamp in the same pass, written at any pixel
// strides (so a convolution can fill its channel range of a concatenated tensor: the fire module's concat costs
// no copy).
//
// In NHWC a pixel's im2col row (kernel rows x kernel columns x Cin) is a few runs of its neighbours' channel
// vectors, so one gather per pixel gives X[pixels x K] directly, with no transpose (the NCHW kernel,
// quantized_convolution.h, needs im2col plus an 8x8 byte transpose). The gather also shifts the activations to
// signed (x - 128; the shift's share of each sum is folded into the bias), pads K to a multiple of 16 with zeros
// and interleaves the rows of each pixel pair per 16 k (one load per step for both pixels); a dense 1x1 stride-1
// layer with K a multiple of 16 (SqueezeNet's squeezes and conv10) is interleaved straight from the input. The
// product runs on 8-bit products (vmull.s8/vmlal.s8: two products per 16-bit lane, safe since
// |2 x 127 x 128| < 32768, then vpadal.s16 into 32-bit sums), 4 output channels x 2 pixels x 16 k per step: on
// armv7 in inline assembly that keeps the tile in the 16 q registers (3 loads + 24 arithmetic instructions per
// 128 products, the k loop unrolled by 2, the pair loop inside the assembly); on aarch64 the same tile in
// intrinsics. The four channel sums of a pixel end in one vector, so the output stage (bias with the input zero
// point folded in, per-channel fixed-point multiplier as TFLite's reference kernels apply it, output zero point,
// ReLU/ReLU6 clamp, narrowing) handles 4 channels at a time, its constants loaded per pair from one packed array,
// and stores them as one 32-bit word.
#pragma once

#include "arm_compute/core/ITensor.h"
#include "arm_compute/core/Types.h"
#include "arm_compute/runtime/IFunction.h"
#include "arm_compute/runtime/IMemoryManager.h"
#include "quantized_convolution.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace engine
{
class QuantizedConvolutionNhwc : public arm_compute::IFunction
{
public:
    /** The memory manager is accepted for the generated code's uniformity; the gathered rows are private. */
    explicit QuantizedConvolutionNhwc(std::shared_ptr<arm_compute::IMemoryManager> memory_manager = nullptr);

    static arm_compute::Status validate(const arm_compute::ITensorInfo *input, const arm_compute::ITensorInfo *weights, const arm_compute::ITensorInfo *biases,
                                        const arm_compute::ITensorInfo *output, const arm_compute::PadStrideInfo &conv_info,
                                        const arm_compute::ActivationLayerInfo &act = arm_compute::ActivationLayerInfo());
    void configure(arm_compute::ITensor *input, arm_compute::ITensor *weights, arm_compute::ITensor *biases, arm_compute::ITensor *output,
                   const arm_compute::PadStrideInfo &conv_info, const arm_compute::ActivationLayerInfo &act = arm_compute::ActivationLayerInfo());
    /** Packs the weights (after they are loaded): per block of 4 output channels, 16 k of each channel in turn. */
    void prepare() override;
    void run() override;

private:
    /** Rows of X (one per output pixel, K padded to 16, signed, pairs interleaved) for pixels [first, end), each
     *  pixel's row assembled in the part's own buffer of _row_buffers. */
    void gather(size_t first, size_t end, size_t part);
    /** All output channels of the pixel pairs [first_pair, end_pair). */
    void compute(size_t first_pair, size_t end_pair);

    arm_compute::ITensor      *_input{ nullptr };
    arm_compute::ITensor      *_weights{ nullptr };
    arm_compute::ITensor      *_biases{ nullptr };
    arm_compute::ITensor      *_output{ nullptr };
    arm_compute::PadStrideInfo _conv_info{};
    size_t                     _kernel_w{ 0 }, _kernel_h{ 0 }, _channels{ 0 };
    size_t                     _k{ 0 }, _padded_k{ 0 }, _pixels{ 0 }, _out_channels{ 0 };
    uint8_t                    _input_zero{ 0 };
    OutputStage                _stage{};
    std::vector<int8_t>        _rows;       // per pixel pair, per 16 k: 16 bytes of each pixel
    std::vector<int8_t>        _row_buffers; // per part of run()'s split (as many as threads at configure): one pixel's row
    size_t                     _row_first{ 0 }, _row_stride{ 0 }, _parts{ 1 }; // the first at a cache line, one per stride
    std::vector<uint8_t *>     _out;        // where each output pixel's channel vector starts, set per run
    std::vector<int8_t>        _packed;     // per block of 4 channels: per 16 k, 16 weights of each channel
    std::vector<int32_t>       _bias;       // bias + (128 - input zero point) x sum of the channel's weights
    std::vector<int32_t>       _constants;  // per block of 4 channels: bias, left shift, multiplier, right shift, zero, low/high bytes
    bool                       _left{ false }; // some channel has a left shift
    bool                       _prepared{ false };
};
} // namespace engine
