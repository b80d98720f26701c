#include "gemm_micro_kernel.h"
#include "arm_compute/core/Validate.h"

#include <arm_neon.h>
#include <cstdint>
#include <cstring>
#include <type_traits>

using namespace arm_compute;

namespace engine
{
namespace gemm
{
Status validate_activation(const ActivationLayerInfo &act)
{
    using F = ActivationLayerInfo::ActivationFunction;
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(act.enabled() && act.activation() != F::RELU && act.activation() != F::BOUNDED_RELU && act.activation() != F::LU_BOUNDED_RELU,
                                    "only RELU, BOUNDED_RELU and LU_BOUNDED_RELU are fused");
    return Status{};
}

Status validate_nhwc_convolution(const ITensorInfo *input, const ITensorInfo *weights, const ITensorInfo *biases, const ITensorInfo *output,
                                 const PadStrideInfo &conv_info, const ActivationLayerInfo &act, bool depthwise, bool codes_output)
{
    ARM_COMPUTE_RETURN_ERROR_ON_NULLPTR(input, weights, output);
    const bool codes = codes_output && output->data_type() == DataType::QASYMM8;
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_type() != DataType::F32 || weights->data_type() != DataType::F32 || (output->data_type() != DataType::F32 && !codes)
                                        || (biases != nullptr && biases->data_type() != DataType::F32),
                                    codes_output ? "float32 only (the output: float32 or QASYMM8)" : "float32 only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(codes && (output->strides_in_bytes()[0] != 1 || output->quantization_info().uniform().scale <= 0.f),
                                    "a QASYMM8 output needs a positive scale and a pixel's channels back to back");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_layout() != DataLayout::NHWC || output->data_layout() != DataLayout::NHWC || weights->data_layout() != DataLayout::NHWC,
                                    "NHWC only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->num_dimensions() > 3 || output->num_dimensions() > 3 || weights->num_dimensions() > (depthwise ? 3U : 4U),
                                    "one image at a time");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(weights->dimension(0) != input->dimension(0),
                                    depthwise ? "one filter per channel only (depth multiplier 1): weights must be C x kernel width x kernel height"
                                              : "weights must be Cin x kernel width x kernel height x Cout");
    const size_t filters = depthwise ? weights->dimension(0) : weights->dimension(3);
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(filters != output->dimension(0), "output channels differ from the weights' filters");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(biases != nullptr && (biases->num_dimensions() > 1 || biases->dimension(0) != filters), "one bias per filter");
    const size_t width  = input->dimension(1) + conv_info.pad_left() + conv_info.pad_right();
    const size_t height = input->dimension(2) + conv_info.pad_top() + conv_info.pad_bottom();
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(width < weights->dimension(1) || height < weights->dimension(2), "kernel larger than the padded input");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(output->dimension(1) != (width - weights->dimension(1)) / conv_info.stride().first + 1
                                        || output->dimension(2) != (height - weights->dimension(2)) / conv_info.stride().second + 1,
                                    "output size does not match the kernel, stride and padding (floor rounding)");
    return validate_activation(act);
}

Clamp clamp_of(const ActivationLayerInfo &act)
{
    using F = ActivationLayerInfo::ActivationFunction;
    Clamp clamp;
    if(!act.enabled())
    {
        return clamp;
    }
    switch(act.activation())
    {
        case F::RELU:
            clamp.lo    = 0.f;
            clamp.flags = 1;
            break;
        case F::BOUNDED_RELU:
            clamp.lo    = 0.f;
            clamp.hi    = act.a();
            clamp.flags = 3;
            break;
        case F::LU_BOUNDED_RELU:
            clamp.lo    = act.b();
            clamp.hi    = act.a();
            clamp.flags = 3;
            break;
        default:
            ARM_COMPUTE_ERROR("unsupported activation");
    }
    return clamp;
}

OutputGrid output_grid(const ITensorInfo &output)
{
    OutputGrid grid;
    if(output.data_type() == DataType::QASYMM8)
    {
        const UniformQuantizationInfo q = output.quantization_info().uniform();
        grid.codes                      = true;
        grid.factor                     = 1.f / q.scale;
        grid.base                       = static_cast<float>(q.offset) + 0.5f;
    }
    return grid;
}

Clamp on_grid(Clamp clamp, const OutputGrid &grid)
{
    if(!grid.codes)
    {
        return clamp;
    }
    clamp.lo = clamp.lo * grid.factor + grid.base;
    clamp.hi = clamp.hi * grid.factor + grid.base;
    // Below 1 a lower bound changes nothing (the store truncates to 0 and saturates negatives to 0), nor an upper
    // one at 255 or above (saturation).
    clamp.flags &= (clamp.lo < 1.f ? 0u : 1u) | (clamp.hi >= 255.f ? 0u : 2u);
    return clamp;
}

namespace
{
/** One row of a block: 8 floats, or their codes. */
inline void store_row(float *row, float32x4_t lo, float32x4_t hi)
{
    vst1q_f32(row, lo);
    vst1q_f32(row + 4, hi);
}

inline void store_row(uint8_t *row, float32x4_t lo, float32x4_t hi)
{
    vst1_u8(row, codes_of(lo, hi));
}
} // namespace

#if defined(__aarch64__)
// AArch64: the same 4 x 8 block and packing; the k loop in inline assembly (fused multiply-accumulates by lane,
// fmla v.4s, v.4s, v.s[lane], on 8 accumulators the compiler allocates, with 4-register loads GCC's intrinsics
// do not keep post-incremented), the bias start, clamp and stores in intrinsics.
namespace
{
template <typename Out>
void block_4x8(const float *a, const float *b, size_t k_blocks, const float *bias, Out *c, size_t row_stride_bytes, const Clamp &clamp)
{
    const float32x4_t bias_lo = vld1q_f32(bias), bias_hi = vld1q_f32(bias + 4);
    float32x4_t       c0l = bias_lo, c0h = bias_hi, c1l = bias_lo, c1h = bias_hi;
    float32x4_t       c2l = bias_lo, c2h = bias_hi, c3l = bias_lo, c3h = bias_hi;
    // An odd k block first, then two per loop iteration: per k block one 4-register load (ld1, 64 bytes, post-
    // incremented) of the A panel block and two of B's rows (two k steps each) for 32 multiply-accumulates by lane,
    // as armv7's vldmia: 72 instructions per 8 steps of k with the loop's own two.
#define ENGINE_GEMM_HALF(B0, B1, B2, B3, L0, L1)   \
    "fmla %[c0l].4s, " B0 ".4s, v0.s[" L0 "]\n"      \
    "fmla %[c0h].4s, " B1 ".4s, v0.s[" L0 "]\n"      \
    "fmla %[c1l].4s, " B0 ".4s, v1.s[" L0 "]\n"      \
    "fmla %[c1h].4s, " B1 ".4s, v1.s[" L0 "]\n"      \
    "fmla %[c2l].4s, " B0 ".4s, v2.s[" L0 "]\n"      \
    "fmla %[c2h].4s, " B1 ".4s, v2.s[" L0 "]\n"      \
    "fmla %[c3l].4s, " B0 ".4s, v3.s[" L0 "]\n"      \
    "fmla %[c3h].4s, " B1 ".4s, v3.s[" L0 "]\n"      \
    "fmla %[c0l].4s, " B2 ".4s, v0.s[" L1 "]\n"      \
    "fmla %[c0h].4s, " B3 ".4s, v0.s[" L1 "]\n"      \
    "fmla %[c1l].4s, " B2 ".4s, v1.s[" L1 "]\n"      \
    "fmla %[c1h].4s, " B3 ".4s, v1.s[" L1 "]\n"      \
    "fmla %[c2l].4s, " B2 ".4s, v2.s[" L1 "]\n"      \
    "fmla %[c2h].4s, " B3 ".4s, v2.s[" L1 "]\n"      \
    "fmla %[c3l].4s, " B2 ".4s, v3.s[" L1 "]\n"      \
    "fmla %[c3h].4s, " B3 ".4s, v3.s[" L1 "]\n"
#define ENGINE_GEMM_K_BLOCK                          \
    "ld1 {v0.4s-v3.4s}, [%[a]], #64\n"               \
    "ld1 {v4.4s-v7.4s}, [%[b]], #64\n"               \
    "ld1 {v16.4s-v19.4s}, [%[b]], #64\n"             \
    ENGINE_GEMM_HALF("v4", "v5", "v6", "v7", "0", "1") \
    ENGINE_GEMM_HALF("v16", "v17", "v18", "v19", "2", "3")
    asm volatile("tbz %[k], #0, 1f\n" ENGINE_GEMM_K_BLOCK "1:\n"
                 "lsr %[k], %[k], #1\n"
                 "cbz %[k], 3f\n"
                 "2:\n" ENGINE_GEMM_K_BLOCK ENGINE_GEMM_K_BLOCK "subs %[k], %[k], #1\n"
                 "b.ne 2b\n"
                 "3:\n"
                 : [a] "+r"(a), [b] "+r"(b), [k] "+r"(k_blocks), [c0l] "+w"(c0l), [c0h] "+w"(c0h), [c1l] "+w"(c1l),
                   [c1h] "+w"(c1h), [c2l] "+w"(c2l), [c2h] "+w"(c2h), [c3l] "+w"(c3l), [c3h] "+w"(c3h)
                 :
                 : "cc", "memory", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v16", "v17", "v18", "v19");
#undef ENGINE_GEMM_K_BLOCK
#undef ENGINE_GEMM_HALF
    if(clamp.flags & 1)
    {
        const float32x4_t lo = vdupq_n_f32(clamp.lo);
        c0l = vmaxq_f32(c0l, lo), c0h = vmaxq_f32(c0h, lo), c1l = vmaxq_f32(c1l, lo), c1h = vmaxq_f32(c1h, lo);
        c2l = vmaxq_f32(c2l, lo), c2h = vmaxq_f32(c2h, lo), c3l = vmaxq_f32(c3l, lo), c3h = vmaxq_f32(c3h, lo);
    }
    if(clamp.flags & 2)
    {
        const float32x4_t hi = vdupq_n_f32(clamp.hi);
        c0l = vminq_f32(c0l, hi), c0h = vminq_f32(c0h, hi), c1l = vminq_f32(c1l, hi), c1h = vminq_f32(c1h, hi);
        c2l = vminq_f32(c2l, hi), c2h = vminq_f32(c2h, hi), c3l = vminq_f32(c3l, hi), c3h = vminq_f32(c3h, hi);
    }
    uint8_t *row = reinterpret_cast<uint8_t *>(c);
    store_row(reinterpret_cast<Out *>(row), c0l, c0h);
    row += row_stride_bytes;
    store_row(reinterpret_cast<Out *>(row), c1l, c1h);
    row += row_stride_bytes;
    store_row(reinterpret_cast<Out *>(row), c2l, c2h);
    row += row_stride_bytes;
    store_row(reinterpret_cast<Out *>(row), c3l, c3h);
}
} // namespace

template <typename Out>
void micro_kernel(const float *a, const float *b, size_t k_blocks, const float *bias, Out *c, size_t row_stride_bytes, const Clamp &clamp, size_t blocks)
{
    for(size_t n = 0; n < blocks; ++n) // B's packed blocks follow each other, 4 * kCols floats per k block
    {
        block_4x8(a, b + n * k_blocks * 4 * kCols, k_blocks, bias + n * kCols, c + n * kCols, row_stride_bytes, clamp);
    }
}
#else
// The product of one k block (4 steps of k): the A panel block (4 rows x 4 k) in q0-q3 (row r's k values in
// d(2r), d(2r+1)), B's 4 rows of 8 columns in q4-q7 two rows at a time; 3 loads (vldmia) for 32
// multiply-accumulates into q8-q15 (row r: q(8+2r) columns 0-3, q(9+2r) columns 4-7).
#define ENGINE_GEMM_HALF(L0, L1, L2, L3, H0, H1, H2, H3) \
    "vldmia %[b]!, {d8-d15}\n"                           \
    "vmla.f32 q8, q4, " L0 "\n"                          \
    "vmla.f32 q9, q5, " L0 "\n"                          \
    "vmla.f32 q10, q4, " L1 "\n"                         \
    "vmla.f32 q11, q5, " L1 "\n"                         \
    "vmla.f32 q12, q4, " L2 "\n"                         \
    "vmla.f32 q13, q5, " L2 "\n"                         \
    "vmla.f32 q14, q4, " L3 "\n"                         \
    "vmla.f32 q15, q5, " L3 "\n"                         \
    "vmla.f32 q8, q6, " H0 "\n"                          \
    "vmla.f32 q9, q7, " H0 "\n"                          \
    "vmla.f32 q10, q6, " H1 "\n"                         \
    "vmla.f32 q11, q7, " H1 "\n"                         \
    "vmla.f32 q12, q6, " H2 "\n"                         \
    "vmla.f32 q13, q7, " H2 "\n"                         \
    "vmla.f32 q14, q6, " H3 "\n"                         \
    "vmla.f32 q15, q7, " H3 "\n"
#define ENGINE_GEMM_K_BLOCK                                                              \
    "vldmia %[a]!, {d0-d7}\n" /* */                                                      \
    ENGINE_GEMM_HALF("d0[0]", "d2[0]", "d4[0]", "d6[0]", "d0[1]", "d2[1]", "d4[1]", "d6[1]") \
    ENGINE_GEMM_HALF("d1[0]", "d3[0]", "d5[0]", "d7[0]", "d1[1]", "d3[1]", "d5[1]", "d7[1]")

// The 4 rows' stores at the row stride: 8 floats each, or 8 codes (truncated to u32 with negatives saturating to
// 0, narrowed with saturation to u16 and then u8: q0-q3 hold the rows' 16-bit values, d0-d3 their bytes).
#define ENGINE_GEMM_STORE_FLOATS                    \
    "vst1.32 {d16-d19}, [%[c]], %[stride]\n"        \
    "vst1.32 {d20-d23}, [%[c]], %[stride]\n"        \
    "vst1.32 {d24-d27}, [%[c]], %[stride]\n"        \
    "vst1.32 {d28-d31}, [%[c]]\n"
#define ENGINE_GEMM_STORE_CODES                                                                                       \
    "vcvt.u32.f32 q8, q8\n"                                                                                            \
    "vcvt.u32.f32 q9, q9\n"                                                                                            \
    "vcvt.u32.f32 q10, q10\n"                                                                                          \
    "vcvt.u32.f32 q11, q11\n"                                                                                          \
    "vcvt.u32.f32 q12, q12\n"                                                                                          \
    "vcvt.u32.f32 q13, q13\n"                                                                                          \
    "vcvt.u32.f32 q14, q14\n"                                                                                          \
    "vcvt.u32.f32 q15, q15\n"                                                                                          \
    "vqmovn.u32 d0, q8\n"                                                                                              \
    "vqmovn.u32 d1, q9\n"                                                                                              \
    "vqmovn.u32 d2, q10\n"                                                                                             \
    "vqmovn.u32 d3, q11\n"                                                                                             \
    "vqmovn.u32 d4, q12\n"                                                                                             \
    "vqmovn.u32 d5, q13\n"                                                                                             \
    "vqmovn.u32 d6, q14\n"                                                                                             \
    "vqmovn.u32 d7, q15\n"                                                                                             \
    "vqmovn.u16 d0, q0\n"                                                                                              \
    "vqmovn.u16 d1, q1\n"                                                                                              \
    "vqmovn.u16 d2, q2\n"                                                                                              \
    "vqmovn.u16 d3, q3\n"                                                                                              \
    "vst1.8 {d0}, [%[c]], %[stride]\n"                                                                                 \
    "vst1.8 {d1}, [%[c]], %[stride]\n"                                                                                 \
    "vst1.8 {d2}, [%[c]], %[stride]\n"                                                                                 \
    "vst1.8 {d3}, [%[c]]\n"

// One 4 x 8 block: the accumulators start from the bias, an odd k block first, then two per loop iteration (72
// instructions per 8 steps of k, 256 multiply-accumulates), the clamp, 4 row stores at the row stride.
#define ENGINE_GEMM_BLOCK(CLAMP, STORE)                                                                                \
    asm volatile("vld1.32 {d16-d19}, [%[bias]]\n"                                                                     \
                 "vmov q10, q8\n"                                                                                     \
                 "vmov q11, q9\n"                                                                                     \
                 "vmov q12, q8\n"                                                                                     \
                 "vmov q13, q9\n"                                                                                     \
                 "vmov q14, q8\n"                                                                                     \
                 "vmov q15, q9\n"                                                                                     \
                 "tst %[k], #1\n"                                                                                     \
                 "beq 1f\n" ENGINE_GEMM_K_BLOCK "1:\n"                                                                \
                 "lsrs %[k], %[k], #1\n"                                                                              \
                 "beq 3f\n"                                                                                           \
                 "2:\n" ENGINE_GEMM_K_BLOCK ENGINE_GEMM_K_BLOCK "subs %[k], %[k], #1\n"                               \
                 "bne 2b\n"                                                                                           \
                 "3:\n" CLAMP STORE                                                                                 \
                 : [a] "+r"(a_at), [b] "+r"(b), [k] "+r"(k), [c] "+r"(c_at)                                         \
                 : [bias] "r"(bias), [stride] "r"(row_stride_bytes), [lo] "r"(bounds), [hi] "r"(bounds + 1)          \
                 : "cc", "memory", "q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q9", "q10", "q11", "q12", "q13", \
                   "q14", "q15")


// The block with each clamp kind (the flags of Clamp, fixed per instantiation) and the given store.
#define ENGINE_GEMM_CLAMPED(STORE)                                                     \
    if(Flags == 0)                                                                     \
    {                                                                                  \
        ENGINE_GEMM_BLOCK("", STORE);                                                  \
    }                                                                                  \
    else if(Flags == 1)                                                                \
    {                                                                                  \
        ENGINE_GEMM_BLOCK(ENGINE_ARMV7_BLOCK_MAX, STORE);                              \
    }                                                                                  \
    else if(Flags == 2)                                                                \
    {                                                                                  \
        ENGINE_GEMM_BLOCK(ENGINE_ARMV7_BLOCK_MIN, STORE);                              \
    }                                                                                  \
    else                                                                               \
    {                                                                                  \
        ENGINE_GEMM_BLOCK(ENGINE_ARMV7_BLOCK_MAX ENGINE_ARMV7_BLOCK_MIN, STORE);       \
    }

namespace
{
/** blocks consecutive 8-column blocks with one clamp kind, storing floats or codes (Out). */
template <unsigned Flags, typename Out>
void blocks_with(const float *a, const float *b, size_t k_blocks, const float *bias, Out *c, size_t row_stride_bytes, const float *bounds, size_t blocks)
{
    for(size_t n = 0; n < blocks; ++n, bias += kCols, c += kCols)
    {
        const float *a_at = a;
        Out         *c_at = c;
        size_t       k    = k_blocks;
        if(std::is_same<Out, uint8_t>::value)
        {
            ENGINE_GEMM_CLAMPED(ENGINE_GEMM_STORE_CODES)
        }
        else
        {
            ENGINE_GEMM_CLAMPED(ENGINE_GEMM_STORE_FLOATS)
        }
    }
}
} // namespace
#undef ENGINE_GEMM_CLAMPED
#undef ENGINE_GEMM_BLOCK
#undef ENGINE_GEMM_STORE_CODES
#undef ENGINE_GEMM_STORE_FLOATS
#undef ENGINE_GEMM_K_BLOCK
#undef ENGINE_GEMM_HALF

template <typename Out>
void micro_kernel(const float *a, const float *b, size_t k_blocks, const float *bias, Out *c, size_t row_stride_bytes, const Clamp &clamp, size_t blocks)
{
    const float bounds[2] = { clamp.lo, clamp.hi };
    switch(clamp.flags & 3)
    {
        case 0:
            blocks_with<0>(a, b, k_blocks, bias, c, row_stride_bytes, bounds, blocks);
            break;
        case 1:
            blocks_with<1>(a, b, k_blocks, bias, c, row_stride_bytes, bounds, blocks);
            break;
        case 2:
            blocks_with<2>(a, b, k_blocks, bias, c, row_stride_bytes, bounds, blocks);
            break;
        default:
            blocks_with<3>(a, b, k_blocks, bias, c, row_stride_bytes, bounds, blocks);
            break;
    }
}
#endif

template <typename Out>
void micro_kernel_partial(const float *a, const float *b, size_t k_blocks, const float *bias, Out *const *rows_at, size_t rows, size_t cols, const Clamp &clamp)
{
    Out block[kRows * kCols];
    micro_kernel(a, b, k_blocks, bias, block, kCols * sizeof(Out), clamp);
    for(size_t r = 0; r < rows; ++r)
    {
        std::memcpy(rows_at[r], block + r * kCols, cols * sizeof(Out));
    }
}

template void micro_kernel<float>(const float *, const float *, size_t, const float *, float *, size_t, const Clamp &, size_t);
template void micro_kernel<uint8_t>(const float *, const float *, size_t, const float *, uint8_t *, size_t, const Clamp &, size_t);
template void micro_kernel_partial<float>(const float *, const float *, size_t, const float *, float *const *, size_t, size_t, const Clamp &);
template void micro_kernel_partial<uint8_t>(const float *, const float *, size_t, const float *, uint8_t *const *, size_t, size_t, const Clamp &);
} // namespace gemm
} // namespace engine
