// The register-blocked float32 matrix-product kernel our own convolutions share (engine::PackedGemmConvolution,
// engine::WinogradConvolution): C[4 x 8] = bias + A[4 x K] . B[K x 8], then an optional clamp, stored as 4 rows
// of 8 contiguous floats at a row stride. In NHWC a row is a pixel (or a Winograd tile) and the 8 columns are
// output channels, so each row of the block is two plain vector stores.
//
// Both operands are packed so that the inner loop is 3 loads (vldmia: the panel block, then B's rows two by two)
// and 32 multiply-accumulates (by scalar) per 4 steps of k; unrolled twice, 256 products cost 72 instructions with
// the loop's own two (0.28 per product; the bias start, clamp and stores add about 25 per block):
//  - A, a panel of 4 rows: for each block of 4 k, the 4 rows' 4 values one after the other (a[kb][row][4]);
//    rows are activations, packed per panel at run time (a vector copy per 4 values in NHWC);
//  - B, the weights, constant: for each block of 8 columns, K rows of 8 (b[block][k][8]), packed once.
// K is padded with zeros to a multiple of 4 in both, columns to a multiple of 8 in B. The 8 accumulators
// (q8-q15), one A panel block (q0-q3) and two B rows (q4-q7) fill the 16 NEON quad registers of armv7 (inline
// assembly). One call runs several column blocks with the same panel (the loop over blocks is C++; the clamp kind
// is a template parameter, so no block tests it). On AArch64 (`#if defined(__aarch64__)` in gemm_micro_kernel.cpp)
// the same block's k loop is inline assembly too (fused multiply-accumulate by lane, 4-register ld1 loads
// post-incremented: the same 72 instructions per 8 steps of k); the packing is the same on both.
//
// A QASYMM8 output (OutputGrid: a float32 layer inside an 8-bit network writing the codes the quantization after
// it would write): the kernel that calls this folds 1 / scale into its packed weights and bias and the zero point
// plus a half into its bias, so the block holds x / scale + zero + 0.5; the clamp's bounds are moved onto that
// grid (on_grid), and the store truncates to integers (negatives saturate to 0), narrows with saturation to 16
// and then 8 bits, and writes 8 bytes per row: micro_kernel<uint8_t>.
#pragma once

#include "arm_compute/core/Error.h"
#include "arm_compute/core/ITensorInfo.h"
#include "arm_compute/core/Types.h"

#include <arm_neon.h>
#include <cstddef>
#include <cstdint>
#include <limits>

#if !defined(__aarch64__)
// The clamp of an armv7 4 x 8 block held in q8-q15 before its stores (inline assembly text; the bounds are the
// operands %[lo] and %[hi]): ENGINE_ARMV7_BLOCK_MAX applies the lower bound, ENGINE_ARMV7_BLOCK_MIN the upper one.
#define ENGINE_ARMV7_BLOCK_MAX        \
    "vld1.32 {d0[], d1[]}, [%[lo]]\n" \
    "vmax.f32 q8, q8, q0\n"           \
    "vmax.f32 q9, q9, q0\n"           \
    "vmax.f32 q10, q10, q0\n"         \
    "vmax.f32 q11, q11, q0\n"         \
    "vmax.f32 q12, q12, q0\n"         \
    "vmax.f32 q13, q13, q0\n"         \
    "vmax.f32 q14, q14, q0\n"         \
    "vmax.f32 q15, q15, q0\n"
#define ENGINE_ARMV7_BLOCK_MIN        \
    "vld1.32 {d2[], d3[]}, [%[hi]]\n" \
    "vmin.f32 q8, q8, q1\n"           \
    "vmin.f32 q9, q9, q1\n"           \
    "vmin.f32 q10, q10, q1\n"         \
    "vmin.f32 q11, q11, q1\n"         \
    "vmin.f32 q12, q12, q1\n"         \
    "vmin.f32 q13, q13, q1\n"         \
    "vmin.f32 q14, q14, q1\n"         \
    "vmin.f32 q15, q15, q1\n"
#endif

namespace engine
{
namespace gemm
{
constexpr size_t kRows = 4;
constexpr size_t kCols = 8;

inline size_t round_up(size_t value, size_t multiple)
{
    return (value + multiple - 1) / multiple * multiple;
}

/** The activation applied at the store: max(lo, min(hi, x)); which bounds apply is in flags (1: lo, 2: hi). */
struct Clamp
{
    float lo{ -std::numeric_limits<float>::infinity() };
    float hi{ std::numeric_limits<float>::infinity() };
    unsigned flags{ 0 };
};

/** Where a float32 kernel's results go: float32 (codes false), or QASYMM8 codes, each result then being
 *  x x factor + base (factor 1 / scale, base the zero point + 0.5, folded into the weights and bias). */
struct OutputGrid
{
    bool  codes{ false };
    float factor{ 1.f };
    float base{ 0.f };
};

/** Whether the kernel's store applies this activation (none, RELU, BOUNDED_RELU, LU_BOUNDED_RELU). */
arm_compute::Status validate_activation(const arm_compute::ActivationLayerInfo &act);
/** What every float32 NHWC convolution of ours needs: tensors of one image, weights Cin x Kw x Kh x Cout (depthwise:
 *  C x Kw x Kh, one filter per channel), one bias per filter, an output of the size the kernel, stride and padding
 *  give (floor rounding), and a fused activation validate_activation() accepts. With codes_output, the output may
 *  also be QASYMM8 (a positive scale, a pixel's channels back to back). */
arm_compute::Status validate_nhwc_convolution(const arm_compute::ITensorInfo *input, const arm_compute::ITensorInfo *weights,
                                              const arm_compute::ITensorInfo *biases, const arm_compute::ITensorInfo *output,
                                              const arm_compute::PadStrideInfo &conv_info, const arm_compute::ActivationLayerInfo &act,
                                              bool depthwise = false, bool codes_output = false);
Clamp clamp_of(const arm_compute::ActivationLayerInfo &act);
/** The grid of an output tensor: off for F32, its quantization for QASYMM8. */
OutputGrid output_grid(const arm_compute::ITensorInfo &output);
/** A clamp's bounds on the grid; a bound the store's saturation already gives (a lower one below 1, an upper one at
 *  255 or above) is dropped. */
Clamp on_grid(Clamp clamp, const OutputGrid &grid);

/** 8 values on the grid (a then b) as bytes: truncated to integers, narrowed with saturation to 0..255. */
inline uint8x8_t codes_of(float32x4_t a, float32x4_t b)
{
    return vqmovn_u16(vcombine_u16(vqmovn_u32(vcvtq_u32_f32(a)), vqmovn_u32(vcvtq_u32_f32(b))));
}

/** Floats of B packed for K x N. */
inline size_t packed_b_size(size_t k, size_t n)
{
    return round_up(n, kCols) / kCols * round_up(k, 4) * kCols;
}

/** Packs B[K x N] given as value(k, n); padding is zero. */
template <typename Value>
void pack_b(float *dst, size_t k, size_t n, Value value)
{
    const size_t k4 = round_up(k, 4);
    for(size_t block = 0; block < round_up(n, kCols) / kCols; ++block)
    {
        for(size_t kk = 0; kk < k4; ++kk)
        {
            for(size_t c = 0; c < kCols; ++c, ++dst)
            {
                const size_t column = block * kCols + c;
                *dst                = kk < k && column < n ? value(kk, column) : 0.f;
            }
        }
    }
}

/** C rows r = 0..3 at c + r * row_stride_bytes: bias[0..7] + sum over k of A(r, k) * B(k, 0..7), clamped; then
 *  the next blocks - 1 blocks of 8 columns (B's next packed blocks, bias and c 8 values further each) with the
 *  same panel. a: the packed panel (k_blocks * 16 floats), b: the packed 8-column blocks (k_blocks * 32 floats
 *  each). Out: float, or uint8_t for codes (OutputGrid). */
template <typename Out>
void micro_kernel(const float *a, const float *b, size_t k_blocks, const float *bias, Out *c, size_t row_stride_bytes, const Clamp &clamp,
                  size_t blocks = 1);

/** Same, through a private 4 x 8 block: only rows < rows and columns < cols are written, row r at rows_at[r]. */
template <typename Out>
void micro_kernel_partial(const float *a, const float *b, size_t k_blocks, const float *bias, Out *const *rows_at, size_t rows, size_t cols,
                          const Clamp &clamp);
} // namespace gemm
} // namespace engine
