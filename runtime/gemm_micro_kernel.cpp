#include "gemm_micro_kernel.h"
#include "arm_compute/core/Validate.h"

#include <cstdint>
#include <cstring>

#if defined(__aarch64__)
#include <arm_neon.h>
#endif

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
                                 const PadStrideInfo &conv_info, const ActivationLayerInfo &act)
{
    ARM_COMPUTE_RETURN_ERROR_ON_NULLPTR(input, weights, output);
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_type() != DataType::F32 || weights->data_type() != DataType::F32 || output->data_type() != DataType::F32
                                        || (biases != nullptr && biases->data_type() != DataType::F32),
                                    "float32 only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_layout() != DataLayout::NHWC || output->data_layout() != DataLayout::NHWC || weights->data_layout() != DataLayout::NHWC,
                                    "NHWC only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->num_dimensions() > 3 || output->num_dimensions() > 3 || weights->num_dimensions() > 4, "one image at a time");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(weights->dimension(0) != input->dimension(0), "weights must be Cin x kernel width x kernel height x Cout");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(weights->dimension(3) != output->dimension(0), "output channels differ from the weights' filters");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(biases != nullptr && (biases->num_dimensions() > 1 || biases->dimension(0) != weights->dimension(3)), "one bias per filter");
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

#if defined(__aarch64__)
// AArch64: the same 4 x 8 block and packing, in intrinsics; the compiler allocates the 32 128-bit registers (8
// accumulators, 4 A rows of 4 k, 2 B halves per step, double-buffered across the unrolled steps) and emits
// fused multiply-accumulates by lane (fmla v.4s, v.4s, v.s[lane]).
void micro_kernel(const float *a, const float *b, size_t k_blocks, const float *bias, float *c, size_t row_stride_bytes, const Clamp &clamp)
{
    const float32x4_t bias_lo = vld1q_f32(bias), bias_hi = vld1q_f32(bias + 4);
    float32x4_t       c0l = bias_lo, c0h = bias_hi, c1l = bias_lo, c1h = bias_hi;
    float32x4_t       c2l = bias_lo, c2h = bias_hi, c3l = bias_lo, c3h = bias_hi;
    do
    {
        const float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4), a2 = vld1q_f32(a + 8), a3 = vld1q_f32(a + 12);
        a += 16;
#define ENGINE_GEMM_STEP(LANE)                                              \
    {                                                                       \
        const float32x4_t bl = vld1q_f32(b), bh = vld1q_f32(b + 4);         \
        b += 8;                                                             \
        c0l = vfmaq_laneq_f32(c0l, bl, a0, LANE);                           \
        c0h = vfmaq_laneq_f32(c0h, bh, a0, LANE);                           \
        c1l = vfmaq_laneq_f32(c1l, bl, a1, LANE);                           \
        c1h = vfmaq_laneq_f32(c1h, bh, a1, LANE);                           \
        c2l = vfmaq_laneq_f32(c2l, bl, a2, LANE);                           \
        c2h = vfmaq_laneq_f32(c2h, bh, a2, LANE);                           \
        c3l = vfmaq_laneq_f32(c3l, bl, a3, LANE);                           \
        c3h = vfmaq_laneq_f32(c3h, bh, a3, LANE);                           \
    }
        ENGINE_GEMM_STEP(0)
        ENGINE_GEMM_STEP(1)
        ENGINE_GEMM_STEP(2)
        ENGINE_GEMM_STEP(3)
#undef ENGINE_GEMM_STEP
    }
    while(--k_blocks != 0);
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
    vst1q_f32(reinterpret_cast<float *>(row), c0l), vst1q_f32(reinterpret_cast<float *>(row) + 4, c0h);
    row += row_stride_bytes;
    vst1q_f32(reinterpret_cast<float *>(row), c1l), vst1q_f32(reinterpret_cast<float *>(row) + 4, c1h);
    row += row_stride_bytes;
    vst1q_f32(reinterpret_cast<float *>(row), c2l), vst1q_f32(reinterpret_cast<float *>(row) + 4, c2h);
    row += row_stride_bytes;
    vst1q_f32(reinterpret_cast<float *>(row), c3l), vst1q_f32(reinterpret_cast<float *>(row) + 4, c3h);
}
#else
// One step of k: B's row (8 columns) in q4-q5 times lane L of each A row (rows in q0, q1, q2, q3 = d0-d7).
#define ENGINE_GEMM_STEP(LO0, LO1, LO2, LO3) \
    "vld1.32 {d8-d11}, [%[b]]!\n"            \
    "vmla.f32 q8, q4, " LO0 "\n"             \
    "vmla.f32 q9, q5, " LO0 "\n"             \
    "vmla.f32 q10, q4, " LO1 "\n"            \
    "vmla.f32 q11, q5, " LO1 "\n"            \
    "vmla.f32 q12, q4, " LO2 "\n"            \
    "vmla.f32 q13, q5, " LO2 "\n"            \
    "vmla.f32 q14, q4, " LO3 "\n"            \
    "vmla.f32 q15, q5, " LO3 "\n"

void micro_kernel(const float *a, const float *b, size_t k_blocks, const float *bias, float *c, size_t row_stride_bytes, const Clamp &clamp)
{
    const float  bounds_values[2] = { clamp.lo, clamp.hi };
    const float *bounds           = bounds_values;
    asm volatile(
        "vld1.32 {d8-d11}, [%[bias]]\n"
        "vmov q8, q4\n"
        "vmov q9, q5\n"
        "vmov q10, q4\n"
        "vmov q11, q5\n"
        "vmov q12, q4\n"
        "vmov q13, q5\n"
        "vmov q14, q4\n"
        "vmov q15, q5\n"
        "1:\n"
        "vld1.32 {d0-d3}, [%[a]]!\n"
        "vld1.32 {d4-d7}, [%[a]]!\n" //
        ENGINE_GEMM_STEP("d0[0]", "d2[0]", "d4[0]", "d6[0]")
        ENGINE_GEMM_STEP("d0[1]", "d2[1]", "d4[1]", "d6[1]")
        ENGINE_GEMM_STEP("d1[0]", "d3[0]", "d5[0]", "d7[0]")
        ENGINE_GEMM_STEP("d1[1]", "d3[1]", "d5[1]", "d7[1]")
        "subs %[k], %[k], #1\n"
        "bne 1b\n"
        "tst %[flags], #1\n"
        "beq 2f\n"
        "vld1.32 {d0[], d1[]}, [%[bounds]]\n"
        "vmax.f32 q8, q8, q0\n"
        "vmax.f32 q9, q9, q0\n"
        "vmax.f32 q10, q10, q0\n"
        "vmax.f32 q11, q11, q0\n"
        "vmax.f32 q12, q12, q0\n"
        "vmax.f32 q13, q13, q0\n"
        "vmax.f32 q14, q14, q0\n"
        "vmax.f32 q15, q15, q0\n"
        "2:\n"
        "tst %[flags], #2\n"
        "beq 3f\n"
        "add %[bounds], %[bounds], #4\n"
        "vld1.32 {d2[], d3[]}, [%[bounds]]\n"
        "vmin.f32 q8, q8, q1\n"
        "vmin.f32 q9, q9, q1\n"
        "vmin.f32 q10, q10, q1\n"
        "vmin.f32 q11, q11, q1\n"
        "vmin.f32 q12, q12, q1\n"
        "vmin.f32 q13, q13, q1\n"
        "vmin.f32 q14, q14, q1\n"
        "vmin.f32 q15, q15, q1\n"
        "3:\n"
        "vst1.32 {d16-d19}, [%[c]], %[stride]\n"
        "vst1.32 {d20-d23}, [%[c]], %[stride]\n"
        "vst1.32 {d24-d27}, [%[c]], %[stride]\n"
        "vst1.32 {d28-d31}, [%[c]]\n"
        : [a] "+r"(a), [b] "+r"(b), [k] "+r"(k_blocks), [c] "+r"(c), [bounds] "+r"(bounds)
        : [bias] "r"(bias), [stride] "r"(row_stride_bytes), [flags] "r"(clamp.flags)
        : "cc", "memory", "q0", "q1", "q2", "q3", "q4", "q5", "q8", "q9", "q10", "q11", "q12", "q13", "q14", "q15");
}
#undef ENGINE_GEMM_STEP
#endif

void micro_kernel_partial(const float *a, const float *b, size_t k_blocks, const float *bias, float *const *rows_at, size_t rows, size_t cols, const Clamp &clamp)
{
    float block[kRows * kCols];
    micro_kernel(a, b, k_blocks, bias, block, kCols * sizeof(float), clamp);
    for(size_t r = 0; r < rows; ++r)
    {
        std::memcpy(rows_at[r], block + r * kCols, cols * sizeof(float));
    }
}
} // namespace gemm
} // namespace engine
