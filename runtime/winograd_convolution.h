// A float32 NHWC 3x3 stride-1 convolution by Winograd's minimal filtering F(6x6, 3x3): each 8x8 input tile
// (6x6 outputs) is transformed (V = B^T d B), the 64 transformed positions are 64 independent matrix products
// M[xi][tiles x Cout] = V[xi][tiles x Cin] . U[xi][Cin x Cout] with U = G g G^T transformed and packed once at
// prepare(), and each tile's 64 products are transformed back (Y = A^T M A). 64 products per 36 outputs instead
// of 9 x 36 multiply-accumulates per input/output channel pair.
//  - The input transform writes straight into the matrix kernel's packed A layout (runtime/gemm_micro_kernel.h:
//    4 tiles x 4 channels per block of k), so there is no separate packing pass; 4 channels per vector.
//  - The products run on the shared 4 x 8 register-blocked kernel. The bias is fused there: A^T's column 1 is all
//    ones, so adding the bias to M at position (1, 1) adds it to all 36 outputs; the products of that position
//    start from the bias, the others from zero.
//  - The output transform applies the activation (ReLU, bounded ReLU) before its store, and writes at any output
//    strides (a channel view of a wider tensor included), clipping the last tiles to the output.
//  - A QASYMM8 output (a float32 layer inside an 8-bit network, fused with the quantization after it): prepare()
//    folds 1 / scale into the transformed weights and bias, and the zero point plus a half into the bias (all 36
//    outputs, as above), so the output transform gives x / scale + zero + 0.5; the activation's bounds are moved
//    to that grid, and the store converts to integers (truncating: rounding to nearest, halves up), narrows with
//    saturation to 0..255 and writes 4 bytes per pixel and 4 channels: what engine::Quantization would write,
//    without the float32 tensor in between.
// Padding (any per side) reads as zeros. Each of the three stages is split among the scheduler's threads.
//
// Why: SqueezeNet's 3x3 expand layers are over half its multiply-accumulates; ACL 20.08's NEWinogradConvolutionLayer
// uses F(4x4, 3x3) in NHWC with separate transform, reshape and product kernels.
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
class WinogradConvolution : public arm_compute::IFunction
{
public:
    /** The memory manager is accepted for the generated code's uniformity; the transformed tiles are private.
     *  output_tile: 6 for F(6x6, 3x3), 4 for F(4x4, 3x3) (engine::WinogradConvolution43). */
    explicit WinogradConvolution(std::shared_ptr<arm_compute::IMemoryManager> memory_manager = nullptr, size_t output_tile = 6);

    static arm_compute::Status validate(const arm_compute::ITensorInfo *input, const arm_compute::ITensorInfo *weights, const arm_compute::ITensorInfo *biases,
                                        const arm_compute::ITensorInfo *output, const arm_compute::PadStrideInfo &conv_info,
                                        const arm_compute::ActivationLayerInfo &act = arm_compute::ActivationLayerInfo());
    void configure(arm_compute::ITensor *input, arm_compute::ITensor *weights, arm_compute::ITensor *biases, arm_compute::ITensor *output,
                   const arm_compute::PadStrideInfo &conv_info, const arm_compute::ActivationLayerInfo &act = arm_compute::ActivationLayerInfo());
    /** Transforms and packs the weights, and the bias (after they are loaded). */
    void prepare() override;
    void run() override;

private:
    template <size_t Tile>
    void transform_input(size_t first_tile, size_t end_tile);
    void multiply(size_t first_position, size_t end_position);
    /** Codes: the output's QASYMM8 codes are stored (a parameter, so that the float32 store tests nothing). */
    template <size_t Tile, bool Codes>
    void transform_output(size_t first_tile, size_t end_tile);

    size_t _tile, _out; // input tile (8 or 6) and output tile (6 or 4)

    arm_compute::ITensor      *_input{ nullptr };
    arm_compute::ITensor      *_weights{ nullptr };
    arm_compute::ITensor      *_biases{ nullptr };
    arm_compute::ITensor      *_output{ nullptr };
    arm_compute::PadStrideInfo _conv_info{};
    gemm::Clamp                _clamp{};
    gemm::OutputGrid           _grid{}; // a QASYMM8 output's
    size_t _tiles_x{ 0 }, _tiles_y{ 0 }, _tiles{ 0 }, _panels{ 0 }, _k_blocks{ 0 }, _filters_padded{ 0 };
    bool               _prepared{ false };
    std::vector<float> _u;       // 64 packed B matrices
    std::vector<float> _bias;    // padded to a multiple of 8
    std::vector<float> _zeros;   // the start of the other 63 positions
    std::vector<float> _v;       // [positions (64 or 36)][panel][k block][4 tiles][4 channels]
    std::vector<float> _m;       // [tile][positions][filters padded]
};
} // namespace engine
