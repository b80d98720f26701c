#include "direct_convolution3x3s2.h"

#include "engine.h"

#include "arm_compute/core/Error.h"
#include "arm_compute/core/Helpers.h"
#include "arm_compute/runtime/NEON/NEScheduler.h"

#include <algorithm>
#include <cstring>

#include <arm_neon.h>

using namespace arm_compute;

namespace engine
{
namespace
{
constexpr size_t kChannels = 3, kPixels = 4, kRowFloats = 27; // a window row of 4 outputs: 9 input pixels x 3 channels
constexpr size_t kTaps = 3 * 3 * kChannels;                      // rows of B per block of 8 filters

#if defined(__aarch64__)
/** AArch64 form (intrinsics): the same blocks of 4 output pixels x 8 filters, accumulated tap by tap: pixel p's
 *  value of tap k in window row ky is float 6 p + k of that row (stride 2, 3 channels), B's row ky * 9 + k. */
template <unsigned Flags>
void group(const float *row, size_t row_stride_bytes, const float *b, const float *bias, float *out, size_t out_stride_bytes, const float *bounds,
           size_t blocks)
{
    for(size_t j = 0; j < blocks; ++j, bias += gemm::kCols, out += gemm::kCols, b += kTaps * gemm::kCols)
    {
        float32x4_t acc[kPixels][2];
        for(size_t p = 0; p < kPixels; ++p)
        {
            acc[p][0] = vld1q_f32(bias);
            acc[p][1] = vld1q_f32(bias + 4);
        }
        const uint8_t *r = reinterpret_cast<const uint8_t *>(row);
        for(size_t ky = 0; ky < 3; ++ky, r += row_stride_bytes)
        {
            const float *x = reinterpret_cast<const float *>(r);
            for(size_t k = 0; k < 9; ++k)
            {
                const float      *taps = b + (ky * 9 + k) * gemm::kCols;
                const float32x4_t lo = vld1q_f32(taps), hi = vld1q_f32(taps + 4);
                for(size_t p = 0; p < kPixels; ++p)
                {
                    acc[p][0] = vfmaq_n_f32(acc[p][0], lo, x[6 * p + k]);
                    acc[p][1] = vfmaq_n_f32(acc[p][1], hi, x[6 * p + k]);
                }
            }
        }
        for(size_t p = 0; p < kPixels; ++p)
        {
            for(float32x4_t &v : acc[p])
            {
                v = (Flags & 1) ? vmaxq_f32(v, vdupq_n_f32(bounds[0])) : v;
                v = (Flags & 2) ? vminq_f32(v, vdupq_n_f32(bounds[1])) : v;
            }
            float *o = reinterpret_cast<float *>(reinterpret_cast<uint8_t *>(out) + p * out_stride_bytes);
            vst1q_f32(o, acc[p][0]);
            vst1q_f32(o + 4, acc[p][1]);
        }
    }
}
#else
// Two rows of B (k, k + 1: q4-q5 and q6-q7) into the accumulators of two pixels, each taking its input value from a
// lane of d0-d7.
#define ENGINE_D3_PAIR(ACC0, ACC1, ACC2, ACC3, P0K0, P1K0, P0K1, P1K1) \
    "vldmia %[b]!, {d8-d15}\n"                                         \
    "vmla.f32 " ACC0 ", q4, " P0K0 "\n"                                \
    "vmla.f32 " ACC1 ", q5, " P0K0 "\n"                                \
    "vmla.f32 " ACC2 ", q4, " P1K0 "\n"                                \
    "vmla.f32 " ACC3 ", q5, " P1K0 "\n"                                \
    "vmla.f32 " ACC0 ", q6, " P0K1 "\n"                                \
    "vmla.f32 " ACC1 ", q7, " P0K1 "\n"                                \
    "vmla.f32 " ACC2 ", q6, " P1K1 "\n"                                \
    "vmla.f32 " ACC3 ", q7, " P1K1 "\n"
#define ENGINE_D3_LAST(ACC0, ACC1, ACC2, ACC3, P0K8, P1K8) \
    "vld1.32 {d8-d11}, [%[b]]!\n"                          \
    "vmla.f32 " ACC0 ", q4, " P0K8 "\n"                    \
    "vmla.f32 " ACC1 ", q5, " P0K8 "\n"                    \
    "vmla.f32 " ACC2 ", q4, " P1K8 "\n"                    \
    "vmla.f32 " ACC3 ", q5, " P1K8 "\n"
// One window row (ky): pixels 0-1 from the row's floats 0-15 (pixel 0's k-th value is float k, pixel 1's float 6 + k),
// then, with B's 9 rows again, pixels 2-3 from floats 11-26 (pixel 2's at 1 + k, pixel 3's at 7 + k).
#define ENGINE_D3_ROW                                                                      \
    "vldmia %[r], {d0-d7}\n"                                                               \
    ENGINE_D3_PAIR("q8", "q9", "q10", "q11", "d0[0]", "d3[0]", "d0[1]", "d3[1]")           \
    ENGINE_D3_PAIR("q8", "q9", "q10", "q11", "d1[0]", "d4[0]", "d1[1]", "d4[1]")           \
    ENGINE_D3_PAIR("q8", "q9", "q10", "q11", "d2[0]", "d5[0]", "d2[1]", "d5[1]")           \
    ENGINE_D3_PAIR("q8", "q9", "q10", "q11", "d3[0]", "d6[0]", "d3[1]", "d6[1]")           \
    ENGINE_D3_LAST("q8", "q9", "q10", "q11", "d4[0]", "d7[0]")                             \
    "sub %[b], %[b], #288\n"                                                               \
    "add %[t], %[r], #44\n"                                                                \
    "vldmia %[t], {d0-d7}\n"                                                               \
    ENGINE_D3_PAIR("q12", "q13", "q14", "q15", "d0[1]", "d3[1]", "d1[0]", "d4[0]")         \
    ENGINE_D3_PAIR("q12", "q13", "q14", "q15", "d1[1]", "d4[1]", "d2[0]", "d5[0]")         \
    ENGINE_D3_PAIR("q12", "q13", "q14", "q15", "d2[1]", "d5[1]", "d3[0]", "d6[0]")         \
    ENGINE_D3_PAIR("q12", "q13", "q14", "q15", "d3[1]", "d6[1]", "d4[0]", "d7[0]")         \
    ENGINE_D3_LAST("q12", "q13", "q14", "q15", "d4[1]", "d7[1]")

#define ENGINE_D3_BLOCK(CLAMP)                                                                                          \
    asm volatile("vld1.32 {d16-d19}, [%[bias]]\n"                                                                      \
                 "vmov q10, q8\n"                                                                                      \
                 "vmov q11, q9\n"                                                                                      \
                 "vmov q12, q8\n"                                                                                      \
                 "vmov q13, q9\n"                                                                                      \
                 "vmov q14, q8\n"                                                                                      \
                 "vmov q15, q9\n"                                                                                      \
                 "1:\n" ENGINE_D3_ROW "add %[r], %[r], %[row_stride]\n"                                                \
                 "subs %[n], %[n], #1\n"                                                                               \
                 "bne 1b\n" CLAMP "vst1.32 {d16-d19}, [%[o]], %[out_stride]\n"                                         \
                 "vst1.32 {d20-d23}, [%[o]], %[out_stride]\n"                                                          \
                 "vst1.32 {d24-d27}, [%[o]], %[out_stride]\n"                                                          \
                 "vst1.32 {d28-d31}, [%[o]]\n"                                                                         \
                 : [r] "+r"(r), [b] "+r"(b), [n] "+r"(n), [o] "+r"(o), [t] "=&r"(t)                                   \
                 : [bias] "r"(bias), [row_stride] "r"(row_stride_bytes), [out_stride] "r"(out_stride_bytes),          \
                   [lo] "r"(bounds), [hi] "r"(bounds + 1)                                                              \
                 : "cc", "memory", "q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q9", "q10", "q11", "q12", "q13", \
                   "q14", "q15")

/** 4 output pixels x 8 filters per block, `blocks` blocks: the window rows start at `row` (27 floats each, rows
 *  row_stride_bytes apart), pixel p of block j is stored at out + p * out_stride_bytes + 8 j floats. */
template <unsigned Flags>
void group(const float *row, size_t row_stride_bytes, const float *b, const float *bias, float *out, size_t out_stride_bytes, const float *bounds,
           size_t blocks)
{
    for(size_t j = 0; j < blocks; ++j, bias += gemm::kCols, out += gemm::kCols)
    {
        const float *r = row;
        float       *o = out;
        const float *t = nullptr;
        size_t       n = 3;
        if(Flags == 0)
        {
            ENGINE_D3_BLOCK("");
        }
        else if(Flags == 1)
        {
            ENGINE_D3_BLOCK(ENGINE_ARMV7_BLOCK_MAX);
        }
        else
        {
            ENGINE_D3_BLOCK(ENGINE_ARMV7_BLOCK_MAX ENGINE_ARMV7_BLOCK_MIN);
        }
    }
}
#undef ENGINE_D3_BLOCK
#undef ENGINE_D3_ROW
#undef ENGINE_D3_LAST
#undef ENGINE_D3_PAIR
#endif

void run_group(unsigned flags, const float *row, size_t row_stride_bytes, const float *b, const float *bias, float *out, size_t out_stride_bytes,
               const float *bounds, size_t blocks)
{
    switch(flags)
    {
        case 0:
            group<0>(row, row_stride_bytes, b, bias, out, out_stride_bytes, bounds, blocks);
            break;
        case 1:
            group<1>(row, row_stride_bytes, b, bias, out, out_stride_bytes, bounds, blocks);
            break;
        default:
            group<3>(row, row_stride_bytes, b, bias, out, out_stride_bytes, bounds, blocks);
            break;
    }
}
} // namespace

DirectConvolution3x3s2::DirectConvolution3x3s2(std::shared_ptr<IMemoryManager> memory_manager)
{
    (void)memory_manager;
}

Status DirectConvolution3x3s2::validate(const ITensorInfo *input, const ITensorInfo *weights, const ITensorInfo *biases, const ITensorInfo *output,
                                        const PadStrideInfo &conv_info, const ActivationLayerInfo &act)
{
    ARM_COMPUTE_RETURN_ERROR_ON_NULLPTR(input, weights, output);
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->dimension(0) != kChannels, "3 input channels only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(weights->num_dimensions() < 3 || weights->dimension(1) != 3 || weights->dimension(2) != 3, "a 3x3 kernel only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(conv_info.stride() != std::make_pair(2U, 2U), "stride 2 only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->strides_in_bytes()[1] != kChannels * sizeof(float) || input->strides_in_bytes()[2] % sizeof(float) != 0,
                                    "the input's pixels must be back to back");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(output->strides_in_bytes()[1] % sizeof(float) != 0 || output->strides_in_bytes()[2] % sizeof(float) != 0,
                                    "output strides must be whole floats");
    return gemm::validate_nhwc_convolution(input, weights, biases, output, conv_info, act);
}

void DirectConvolution3x3s2::configure(ITensor *input, ITensor *weights, ITensor *biases, ITensor *output, const PadStrideInfo &conv_info,
                                       const ActivationLayerInfo &act)
{
    ARM_COMPUTE_ERROR_THROW_ON(validate(input->info(), weights->info(), biases != nullptr ? biases->info() : nullptr, output->info(), conv_info, act));
    _input     = input;
    _weights   = weights;
    _biases    = biases;
    _output    = output;
    _conv_info = conv_info;
    _clamp     = gemm::clamp_of(act);
}

void DirectConvolution3x3s2::prepare()
{
    if(_prepared)
    {
        return;
    }
    const ITensorInfo &w       = *_weights->info();
    const size_t       filters = w.dimension(3);
    const size_t       blocks  = gemm::round_up(filters, gemm::kCols) / gemm::kCols;
    // Per block of 8 filters: rows k = (ky, kx, c) in that order, 8 filters each.
    _packed_weights.assign(blocks * kTaps * gemm::kCols, 0.f);
    float *dst = _packed_weights.data();
    for(size_t block = 0; block < blocks; ++block)
    {
        for(size_t ky = 0; ky < 3; ++ky)
        {
            for(size_t kx = 0; kx < 3; ++kx)
            {
                for(size_t c = 0; c < kChannels; ++c)
                {
                    for(size_t f = 0; f < gemm::kCols; ++f, ++dst)
                    {
                        const size_t n = block * gemm::kCols + f;
                        *dst = n < filters ? *reinterpret_cast<const float *>(_weights->buffer() + w.offset_element_in_bytes(Coordinates(c, kx, ky, n))) : 0.f;
                    }
                }
            }
        }
    }
    _bias.assign(blocks * gemm::kCols, 0.f);
    for(size_t n = 0; _biases != nullptr && n < filters; ++n)
    {
        _bias[n] = *reinterpret_cast<const float *>(_biases->buffer() + _biases->info()->offset_element_in_bytes(Coordinates(n)));
    }
    _weights->mark_as_unused(); // packed: the network frees the loaded copy
    _prepared = true;
}

void DirectConvolution3x3s2::rows(size_t first, size_t end) const
{
    const ITensorInfo &in = *_input->info(), &out = *_output->info();
    const int          in_w = static_cast<int>(in.dimension(1)), in_h = static_cast<int>(in.dimension(2));
    const size_t       in_sy = in.strides_in_bytes()[2];
    const size_t       filters = out.dimension(0), out_w = out.dimension(1);
    const size_t       out_sx = out.strides_in_bytes()[1], out_sy = out.strides_in_bytes()[2];
    const uint8_t     *src = _input->buffer() + in.offset_first_element_in_bytes();
    uint8_t           *dst = _output->buffer() + out.offset_first_element_in_bytes();
    const int          pad_x = static_cast<int>(_conv_info.pad_left()), pad_y = static_cast<int>(_conv_info.pad_top());
    const size_t       whole = filters / gemm::kCols, blocks = gemm::round_up(filters, gemm::kCols) / gemm::kCols;
    const float        bounds[2] = { _clamp.lo, _clamp.hi };
    const unsigned     flags     = _clamp.flags & 3;
    float              patch[3 * kRowFloats + 4]; // window rows crossing the padding, zeros outside the input
    float              block[kPixels * gemm::kCols];
    for(size_t oy = first; oy < end; ++oy)
    {
        const int iy0 = static_cast<int>(oy) * 2 - pad_y;
        for(size_t gx = 0; gx < out_w; gx += kPixels)
        {
            // The last group ends at the row's end (overlapping the one before) when the row has 4 pixels or more.
            const size_t x0     = out_w >= kPixels ? std::min(gx, out_w - kPixels) : 0;
            const size_t pixels = std::min(kPixels, out_w - x0);
            const int    ix0    = static_cast<int>(x0) * 2 - pad_x;
            const float *row;
            size_t       row_stride;
            if(iy0 >= 0 && iy0 + 3 <= in_h && ix0 >= 0 && ix0 + 9 <= in_w)
            {
                row        = reinterpret_cast<const float *>(src + iy0 * in_sy + ix0 * kChannels * sizeof(float));
                row_stride = in_sy;
            }
            else
            {
                std::fill(patch, patch + 3 * kRowFloats, 0.f);
                for(int ky = 0; ky < 3; ++ky)
                {
                    const int iy = iy0 + ky;
                    if(iy < 0 || iy >= in_h)
                    {
                        continue;
                    }
                    for(int i = 0; i < 9; ++i)
                    {
                        const int ix = ix0 + i;
                        if(ix >= 0 && ix < in_w)
                        {
                            std::memcpy(patch + ky * kRowFloats + i * kChannels, src + iy * in_sy + ix * kChannels * sizeof(float), kChannels * sizeof(float));
                        }
                    }
                }
                row        = patch;
                row_stride = kRowFloats * sizeof(float);
            }
            float *o = reinterpret_cast<float *>(dst + oy * out_sy + x0 * out_sx);
            if(pixels == kPixels && whole > 0)
            {
                run_group(flags, row, row_stride, _packed_weights.data(), _bias.data(), o, out_sx, bounds, whole);
            }
            for(size_t j = pixels == kPixels ? whole : 0; j < blocks; ++j) // through a private block
            {
                run_group(flags, row, row_stride, _packed_weights.data() + j * kTaps * gemm::kCols, _bias.data() + j * gemm::kCols, block,
                          gemm::kCols * sizeof(float), bounds, 1);
                const size_t cols = std::min(gemm::kCols, filters - j * gemm::kCols);
                for(size_t p = 0; p < pixels; ++p)
                {
                    std::memcpy(reinterpret_cast<uint8_t *>(o) + p * out_sx + j * gemm::kCols * sizeof(float), block + p * gemm::kCols, cols * sizeof(float));
                }
            }
            if(x0 + kPixels >= out_w)
            {
                break;
            }
        }
    }
}

void DirectConvolution3x3s2::run()
{
    prepare();
    split(_output->info()->dimension(2), "DirectConvolution3x3s2", [this](size_t first, size_t end) { rows(first, end); });
}
} // namespace engine
