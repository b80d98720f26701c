#include "depthwise_convolution.h"

#include "copy_floats.h"
#include "engine.h"

#include "arm_compute/core/Error.h"
#include "arm_compute/core/Helpers.h"
#include "arm_compute/runtime/NEON/NEScheduler.h"

#include <algorithm>
#include <vector>

#include <arm_neon.h>

using namespace arm_compute;

namespace engine
{
namespace
{
constexpr size_t kLanes = 4, kPixels = 4;

/** Where tap kx of a window row is among the row's packed taps: in order for stride 1; for stride 2 the even taps
 *  first, then the odd ones (the assembly loads the even input columns, then the odd ones). */
constexpr int tap_slot(int k, int stride, int kx)
{
    return stride == 1 ? kx : kx % 2 == 0 ? kx / 2 : (k + 1) / 2 + kx / 2;
}

inline float32x4_t mla(float32x4_t acc, float32x4_t x, float32x4_t w)
{
#if defined(__aarch64__)
    return vfmaq_f32(acc, x, w);
#else
    return vmlaq_f32(acc, x, w);
#endif
}

/** dst[0, n) = 0 (n a multiple of 4). */
inline void zero_floats(float *dst, size_t n)
{
#if !defined(__aarch64__)
    size_t big = n / 32;
    n %= 32;
    if(big > 0)
    {
        asm volatile("vmov.i32 q0, #0\n"
                     "vmov.i32 q1, #0\n"
                     "vmov.i32 q2, #0\n"
                     "vmov.i32 q3, #0\n"
                     "vmov.i32 q4, #0\n"
                     "vmov.i32 q5, #0\n"
                     "vmov.i32 q6, #0\n"
                     "vmov.i32 q7, #0\n"
                     "1:\n"
                     "vstmia %[d]!, {d0-d15}\n"
                     "subs %[big], %[big], #1\n"
                     "bne 1b\n"
                     : [d] "+r"(dst), [big] "+r"(big)
                     :
                     : "cc", "memory", "q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7");
    }
#endif
    for(; n > 0; n -= 4, dst += 4)
    {
        vst1q_f32(dst, vdupq_n_f32(0.f));
    }
}

/** What a group of output pixels needs besides its pointers. */
struct Shape
{
    int            in_w, in_h, pad_x, pad_y;
    size_t         channels, in_sx, in_sy, out_w, out_sx, out_sy;
    const uint8_t *src;
    uint8_t       *dst;
    const float   *weights; // per block of 4 channels: K x K taps of 4 floats
    const float   *bias;    // per block of 4 channels
    float          lo, hi;
    const float   *bounds; // lo, hi
};

/** 4 output pixels x 4 channels: `in` points at the first window's top-left pixel (channel block), input pixels
 *  sx bytes apart in a row, rows sy bytes apart; pixel p is stored at out + p * osx. */
template <int K, int S, unsigned Flags>
__attribute__((always_inline)) inline void group_intrinsics(const uint8_t *in, size_t sx, size_t sy, const float *w, const float *bias, uint8_t *out, size_t osx, float32x4_t lo, float32x4_t hi)
{
    constexpr int     columns = S * (kPixels - 1) + K; // input columns of the 4 windows' rows
    const float32x4_t b       = vld1q_f32(bias);
    float32x4_t       a0 = b, a1 = b, a2 = b, a3 = b;
#pragma GCC unroll 5
    for(int ky = 0; ky < K; ++ky, in += sy)
    {
        float32x4_t    x[columns];
        const uint8_t *r = in;
#pragma GCC unroll 11
        for(int j = 0; j < columns; ++j, r += sx)
        {
            x[j] = vld1q_f32(reinterpret_cast<const float *>(r));
        }
#pragma GCC unroll 5
        for(int kx = 0; kx < K; ++kx)
        {
            const float32x4_t t = vld1q_f32(w + tap_slot(K, S, kx) * kLanes);
            a0                  = mla(a0, x[kx], t);
            a1                  = mla(a1, x[S + kx], t);
            a2                  = mla(a2, x[2 * S + kx], t);
            a3                  = mla(a3, x[3 * S + kx], t);
        }
        w += K * kLanes;
    }
    if(Flags & 1)
    {
        a0 = vmaxq_f32(a0, lo), a1 = vmaxq_f32(a1, lo), a2 = vmaxq_f32(a2, lo), a3 = vmaxq_f32(a3, lo);
    }
    if(Flags & 2)
    {
        a0 = vminq_f32(a0, hi), a1 = vminq_f32(a1, hi), a2 = vminq_f32(a2, hi), a3 = vminq_f32(a3, hi);
    }
    vst1q_f32(reinterpret_cast<float *>(out), a0);
    vst1q_f32(reinterpret_cast<float *>(out + osx), a1);
    vst1q_f32(reinterpret_cast<float *>(out + 2 * osx), a2);
    vst1q_f32(reinterpret_cast<float *>(out + 3 * osx), a3);
}

#if defined(__aarch64__)
/** `n` blocks of 4 channels of one group of 4 output pixels (the blocks' inputs, outputs and biases 4 floats apart,
 *  their taps one after the other). */
template <int K, int S, unsigned Flags>
__attribute__((always_inline)) inline void group_blocks(const uint8_t *in, size_t sx, size_t sy, const float *w, const float *bias, uint8_t *out, size_t osx, size_t n,
                                                  float32x4_t lo, float32x4_t hi, const float *)
{
    for(size_t cb = 0; cb < n; ++cb, in += kLanes * sizeof(float), w += K * K * kLanes, bias += kLanes, out += kLanes * sizeof(float))
    {
        group_intrinsics<K, S, Flags>(in, sx, sy, w, bias, out, osx, lo, hi);
    }
}
#else
// armv7: the same loop over blocks in inline assembly. The accumulators of the 4 pixels are q8-q11 (from the
// bias), a window row's taps q12-q15 (one vldmia), its input columns q0-q5 (q0-q7 for 5x5 stride 1), each loaded
// once with a post-increment by the step (the pixel stride; for stride 2 twice that: the even columns, then the odd
// ones from r + step / 2). No register is spilled; per block 3x3/1 is 90 instructions for 144 multiply-adds.
#define ENGINE_DW_MLA4(T, X0, X1, X2, X3) \
    "vmla.f32 q8, " X0 ", " T "\n"        \
    "vmla.f32 q9, " X1 ", " T "\n"        \
    "vmla.f32 q10, " X2 ", " T "\n"       \
    "vmla.f32 q11, " X3 ", " T "\n"
#define ENGINE_DW_LOAD(D) "vld1.32 {" D "}, [%[t]], %[step]\n"
#define ENGINE_DW_LOAD4 ENGINE_DW_LOAD("d0-d1") ENGINE_DW_LOAD("d2-d3") ENGINE_DW_LOAD("d4-d5") ENGINE_DW_LOAD("d6-d7")
// 3x3 stride 1: columns 0-5 in q0-q5, taps 0-2 in q12-q14.
#define ENGINE_DW_ROW_3_1                                                                                                  \
    "mov %[t], %[r]\n"                                                                                                     \
    "vldmia %[w]!, {d24-d29}\n" ENGINE_DW_LOAD4 ENGINE_DW_LOAD("d8-d9") ENGINE_DW_LOAD("d10-d11") "add %[r], %[r], %[sy]\n" \
        ENGINE_DW_MLA4("q12", "q0", "q1", "q2", "q3") ENGINE_DW_MLA4("q13", "q1", "q2", "q3", "q4")                         \
            ENGINE_DW_MLA4("q14", "q2", "q3", "q4", "q5")
// 3x3 stride 2: taps packed 0, 2, 1 (q12-q14); even columns 0-8 in q0-q4 (taps 0, 2), odd columns 1-7 in q0-q3 (tap 1).
#define ENGINE_DW_ROW_3_2                                                                                                              \
    "mov %[t], %[r]\n"                                                                                                                 \
    "vldmia %[w]!, {d24-d29}\n" ENGINE_DW_LOAD4 ENGINE_DW_LOAD("d8-d9") ENGINE_DW_MLA4("q12", "q0", "q1", "q2", "q3")                \
        ENGINE_DW_MLA4("q13", "q1", "q2", "q3", "q4") "add %[t], %[r], %[step], lsr #1\n" ENGINE_DW_LOAD4 "add %[r], %[r], %[sy]\n" \
            ENGINE_DW_MLA4("q14", "q0", "q1", "q2", "q3")
// 5x5 stride 1: columns 0-7 in q0-q7, taps 0-3 in q12-q15, then tap 4 in q12.
#define ENGINE_DW_ROW_5_1                                                                                                               \
    "mov %[t], %[r]\n"                                                                                                                  \
    "vldmia %[w]!, {d24-d31}\n" ENGINE_DW_LOAD4 ENGINE_DW_LOAD("d8-d9") ENGINE_DW_LOAD("d10-d11") ENGINE_DW_LOAD("d12-d13")           \
        ENGINE_DW_LOAD("d14-d15") "add %[r], %[r], %[sy]\n" ENGINE_DW_MLA4("q12", "q0", "q1", "q2", "q3")                               \
            ENGINE_DW_MLA4("q13", "q1", "q2", "q3", "q4") ENGINE_DW_MLA4("q14", "q2", "q3", "q4", "q5")                                 \
                ENGINE_DW_MLA4("q15", "q3", "q4", "q5", "q6") "vld1.32 {d24-d25}, [%[w]]!\n" ENGINE_DW_MLA4("q12", "q4", "q5", "q6", "q7")
// 5x5 stride 2: taps packed 0, 2, 4, 1, 3 (q12-q14, then q12-q13); even columns 0-10 in q0-q5, odd columns 1-9 in q0-q4.
#define ENGINE_DW_ROW_5_2                                                                                                           \
    "mov %[t], %[r]\n"                                                                                                              \
    "vldmia %[w]!, {d24-d29}\n" ENGINE_DW_LOAD4 ENGINE_DW_LOAD("d8-d9") ENGINE_DW_LOAD("d10-d11")                                   \
        ENGINE_DW_MLA4("q12", "q0", "q1", "q2", "q3") ENGINE_DW_MLA4("q13", "q1", "q2", "q3", "q4")                                 \
            ENGINE_DW_MLA4("q14", "q2", "q3", "q4", "q5") "add %[t], %[r], %[step], lsr #1\n"                                      \
            "vldmia %[w]!, {d24-d27}\n" ENGINE_DW_LOAD4 ENGINE_DW_LOAD("d8-d9") "add %[r], %[r], %[sy]\n"                           \
                ENGINE_DW_MLA4("q12", "q0", "q1", "q2", "q3") ENGINE_DW_MLA4("q13", "q1", "q2", "q3", "q4")
#define ENGINE_DW_BACK "sub %[r], %[r], %[sy]\n"
#define ENGINE_DW_CLAMP_MAX         \
    "vld1.32 {d4}, [%[lo]]\n"       \
    "vdup.32 q0, d4[0]\n"           \
    "vmax.f32 q8, q8, q0\n"         \
    "vmax.f32 q9, q9, q0\n"         \
    "vmax.f32 q10, q10, q0\n"       \
    "vmax.f32 q11, q11, q0\n"
#define ENGINE_DW_CLAMP_MIN         \
    "vdup.32 q1, d4[1]\n"           \
    "vmin.f32 q8, q8, q1\n"         \
    "vmin.f32 q9, q9, q1\n"         \
    "vmin.f32 q10, q10, q1\n"       \
    "vmin.f32 q11, q11, q1\n"
// One block per iteration: the row pointer goes back up the window (K subtractions) and 4 floats on, and so does
// the output pointer after its 4 stores.
#define ENGINE_DW_LOOP(ROWS, BACK, CLAMP)                                                                                      \
    asm volatile("1:\n"                                                                                                        \
                 "vld1.32 {d16-d17}, [%[bias]]!\n"                                                                            \
                 "vmov q9, q8\n"                                                                                              \
                 "vmov q10, q8\n"                                                                                             \
                 "vmov q11, q8\n" ROWS BACK "add %[r], %[r], #16\n" CLAMP "vst1.32 {d16-d17}, [%[o]], %[osx]\n"              \
                 "vst1.32 {d18-d19}, [%[o]], %[osx]\n"                                                                        \
                 "vst1.32 {d20-d21}, [%[o]], %[osx]\n"                                                                        \
                 "vst1.32 {d22-d23}, [%[o]]\n"                                                                                \
                 "sub %[o], %[o], %[osx]\n"                                                                                   \
                 "sub %[o], %[o], %[osx]\n"                                                                                   \
                 "sub %[o], %[o], %[osx]\n"                                                                                   \
                 "add %[o], %[o], #16\n"                                                                                      \
                 "subs %[n], %[n], #1\n"                                                                                      \
                 "bne 1b\n"                                                                                                   \
                 : [r] "+r"(r), [w] "+r"(w), [bias] "+r"(bias), [o] "+r"(o), [n] "+r"(n), [t] "=&r"(t)                         \
                 : [step] "r"(step), [sy] "r"(sy), [osx] "r"(osx), [lo] "r"(bounds)                                           \
                 : "cc", "memory", "q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q9", "q10", "q11", "q12", "q13", "q14", \
                   "q15")
#define ENGINE_DW_CLAMPED(ROWS, BACK)                                          \
    if(Flags == 0)                                                             \
    {                                                                          \
        ENGINE_DW_LOOP(ROWS, BACK, "");                                        \
    }                                                                          \
    else if(Flags == 1)                                                        \
    {                                                                          \
        ENGINE_DW_LOOP(ROWS, BACK, ENGINE_DW_CLAMP_MAX);                       \
    }                                                                          \
    else                                                                       \
    {                                                                          \
        ENGINE_DW_LOOP(ROWS, BACK, ENGINE_DW_CLAMP_MAX ENGINE_DW_CLAMP_MIN);   \
    }

/** `n` (> 0) blocks of 4 channels of one group of 4 output pixels, as group_intrinsics() computes each (bounds:
 *  the clamp's lo, hi). */
template <int K, int S, unsigned Flags>
__attribute__((always_inline)) inline void group_blocks(const uint8_t *r, size_t sx, size_t sy, const float *w, const float *bias, uint8_t *o, size_t osx, size_t n,
                                                  float32x4_t, float32x4_t, const float *bounds)
{
    const uint8_t *t    = nullptr;
    const size_t   step = S * sx;
    if(K == 3 && S == 1)
    {
        ENGINE_DW_CLAMPED(ENGINE_DW_ROW_3_1 ENGINE_DW_ROW_3_1 ENGINE_DW_ROW_3_1, ENGINE_DW_BACK ENGINE_DW_BACK ENGINE_DW_BACK)
    }
    else if(K == 3)
    {
        ENGINE_DW_CLAMPED(ENGINE_DW_ROW_3_2 ENGINE_DW_ROW_3_2 ENGINE_DW_ROW_3_2, ENGINE_DW_BACK ENGINE_DW_BACK ENGINE_DW_BACK)
    }
    else if(S == 1)
    {
        ENGINE_DW_CLAMPED(ENGINE_DW_ROW_5_1 ENGINE_DW_ROW_5_1 ENGINE_DW_ROW_5_1 ENGINE_DW_ROW_5_1 ENGINE_DW_ROW_5_1,
                          ENGINE_DW_BACK ENGINE_DW_BACK ENGINE_DW_BACK ENGINE_DW_BACK ENGINE_DW_BACK)
    }
    else
    {
        ENGINE_DW_CLAMPED(ENGINE_DW_ROW_5_2 ENGINE_DW_ROW_5_2 ENGINE_DW_ROW_5_2 ENGINE_DW_ROW_5_2 ENGINE_DW_ROW_5_2,
                          ENGINE_DW_BACK ENGINE_DW_BACK ENGINE_DW_BACK ENGINE_DW_BACK ENGINE_DW_BACK)
    }
}
#undef ENGINE_DW_CLAMPED
#undef ENGINE_DW_LOOP
#undef ENGINE_DW_CLAMP_MIN
#undef ENGINE_DW_CLAMP_MAX
#undef ENGINE_DW_BACK
#undef ENGINE_DW_ROW_5_2
#undef ENGINE_DW_ROW_5_1
#undef ENGINE_DW_ROW_3_2
#undef ENGINE_DW_ROW_3_1
#undef ENGINE_DW_LOAD4
#undef ENGINE_DW_LOAD
#undef ENGINE_DW_MLA4
#endif

/** Output rows [first, end): groups of 4 pixels whose windows lie inside the input read it in place, the others
 *  (windows crossing the padding or the input's end) a zero-padded copy of their windows, all whole blocks of
 *  channels at once (a copy or a clear per window pixel); a row of fewer than 4 pixels goes through 4 private
 *  pixels, and the channel tail (fewer than 4) through a zero-padded copy of its own and a private block. */
template <int K, int S, unsigned Flags>
void rows_of(const Shape &s, size_t first, size_t end)
{
    constexpr int     columns = S * (kPixels - 1) + K;
    const float32x4_t lo = vdupq_n_f32(s.lo), hi = vdupq_n_f32(s.hi);
    const size_t      whole = s.channels / kLanes, blocks = (s.channels + kLanes - 1) / kLanes;
    const size_t      row = whole * kLanes; // floats per pixel of the wide copy
    std::vector<float> wide(K * columns * row + kPixels * row);
    float             patch[K * columns * kLanes];
    float             block[kPixels * kLanes];
    for(size_t oy = first; oy < end; ++oy)
    {
        const int iy0 = static_cast<int>(oy) * S - s.pad_y;
        const int ky0 = std::max(0, -iy0), ky1 = std::min(K, s.in_h - iy0);
        for(size_t gx = 0; gx < s.out_w; gx += kPixels)
        {
            // The last group ends at the row's end (overlapping the one before) when the row has 4 pixels or more.
            const size_t x0     = s.out_w >= kPixels ? std::min(gx, s.out_w - kPixels) : 0;
            const size_t pixels = std::min(kPixels, s.out_w - x0);
            const int    ix0    = static_cast<int>(x0) * S - s.pad_x;
            const int    j0 = std::max(0, -ix0), j1 = std::min(columns, s.in_w - ix0);
            uint8_t     *o = s.dst + oy * s.out_sy + x0 * s.out_sx;
            if(ky0 == 0 && ky1 == K && j0 == 0 && j1 == columns && pixels == kPixels)
            {
                if(whole > 0)
                {
                    group_blocks<K, S, Flags>(s.src + iy0 * s.in_sy + ix0 * s.in_sx, s.in_sx, s.in_sy, s.weights, s.bias, o, s.out_sx, whole, lo, hi, s.bounds);
                }
            }
            else if(whole > 0)
            {
                // The group's windows (every whole block of channels) into the zero-padded copy: pixels of `row`
                // floats, rows of `columns` pixels; then the same loop over blocks reads the copy.
                for(int ky = 0; ky < K; ++ky)
                {
                    for(int j = 0; j < columns; ++j)
                    {
                        float *cell = wide.data() + (ky * columns + j) * row;
                        if(ky >= ky0 && ky < ky1 && j >= j0 && j < j1)
                        {
                            copy_floats(cell, reinterpret_cast<const float *>(s.src + (iy0 + ky) * s.in_sy + (ix0 + j) * s.in_sx), row);
                        }
                        else
                        {
                            zero_floats(cell, row);
                        }
                    }
                }
                const uint8_t *copy = reinterpret_cast<const uint8_t *>(wide.data());
                if(pixels == kPixels)
                {
                    group_blocks<K, S, Flags>(copy, row * sizeof(float), columns * row * sizeof(float), s.weights, s.bias, o, s.out_sx, whole, lo, hi, s.bounds);
                }
                else // a row of fewer than 4 pixels: through 4 private pixels
                {
                    float *pixels4 = wide.data() + K * columns * row;
                    group_blocks<K, S, Flags>(copy, row * sizeof(float), columns * row * sizeof(float), s.weights, s.bias, reinterpret_cast<uint8_t *>(pixels4),
                                              row * sizeof(float), whole, lo, hi, s.bounds);
                    for(size_t p = 0; p < pixels; ++p)
                    {
                        copy_floats(reinterpret_cast<float *>(o + p * s.out_sx), pixels4 + p * row, row);
                    }
                }
            }
            if(whole < blocks) // the channel tail: through the zero-padded copy and the private block
            {
                const size_t c0 = whole * kLanes, lanes = s.channels - c0;
                std::fill(patch, patch + K * columns * kLanes, 0.f);
                for(int ky = ky0; ky < ky1; ++ky)
                {
                    for(int j = j0; j < j1; ++j)
                    {
                        const float *x = reinterpret_cast<const float *>(s.src + (iy0 + ky) * s.in_sy + (ix0 + j) * s.in_sx) + c0;
                        std::copy(x, x + lanes, patch + (ky * columns + j) * kLanes);
                    }
                }
                group_blocks<K, S, Flags>(reinterpret_cast<const uint8_t *>(patch), kLanes * sizeof(float), columns * kLanes * sizeof(float),
                                   s.weights + whole * K * K * kLanes, s.bias + whole * kLanes, reinterpret_cast<uint8_t *>(block), kLanes * sizeof(float),
                                    1, lo, hi, s.bounds);
                for(size_t p = 0; p < pixels; ++p)
                {
                    std::copy(block + p * kLanes, block + p * kLanes + lanes, reinterpret_cast<float *>(o + p * s.out_sx) + c0);
                }
            }
            if(x0 + kPixels >= s.out_w)
            {
                break;
            }
        }
    }
}
using RowsFn = void (*)(const Shape &, size_t, size_t);

template <int K, int S>
RowsFn rows_for(unsigned flags)
{
    return flags == 0 ? &rows_of<K, S, 0> : flags == 1 ? &rows_of<K, S, 1> : &rows_of<K, S, 3>;
}
} // namespace

DepthwiseConvolution::DepthwiseConvolution(std::shared_ptr<IMemoryManager> memory_manager)
{
    (void)memory_manager;
}

Status DepthwiseConvolution::validate(const ITensorInfo *input, const ITensorInfo *weights, const ITensorInfo *biases, const ITensorInfo *output,
                                      const PadStrideInfo &conv_info, const ActivationLayerInfo &act)
{
    ARM_COMPUTE_RETURN_ERROR_ON_NULLPTR(input, weights, output);
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(weights->dimension(1) != weights->dimension(2) || (weights->dimension(1) != 3 && weights->dimension(1) != 5),
                                    "a 3x3 or 5x5 kernel only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(conv_info.stride().first != conv_info.stride().second || conv_info.stride().first < 1 || conv_info.stride().first > 2,
                                    "stride 1 or 2 (the same in both directions) only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->strides_in_bytes()[1] % sizeof(float) != 0 || input->strides_in_bytes()[2] % sizeof(float) != 0
                                        || output->strides_in_bytes()[1] % sizeof(float) != 0 || output->strides_in_bytes()[2] % sizeof(float) != 0,
                                    "strides must be whole floats");
    return gemm::validate_nhwc_convolution(input, weights, biases, output, conv_info, act, true);
}

void DepthwiseConvolution::configure(ITensor *input, ITensor *weights, ITensor *biases, ITensor *output, const PadStrideInfo &conv_info,
                                     const ActivationLayerInfo &act)
{
    ARM_COMPUTE_ERROR_THROW_ON(validate(input->info(), weights->info(), biases != nullptr ? biases->info() : nullptr, output->info(), conv_info, act));
    _input     = input;
    _weights   = weights;
    _biases    = biases;
    _output    = output;
    _conv_info = conv_info;
    _clamp     = gemm::clamp_of(act);
    _kernel    = weights->info()->dimension(1);
}

void DepthwiseConvolution::prepare()
{
    if(_prepared)
    {
        return;
    }
    const ITensorInfo &w        = *_weights->info();
    const size_t       channels = w.dimension(0), k = _kernel;
    const size_t       blocks   = (channels + kLanes - 1) / kLanes;
    const int          stride   = static_cast<int>(_conv_info.stride().first);
    _packed_weights.assign(blocks * k * k * kLanes, 0.f);
    _bias.assign(blocks * kLanes, 0.f);
    for(size_t c = 0; c < channels; ++c)
    {
        for(size_t ky = 0; ky < k; ++ky)
        {
            for(size_t kx = 0; kx < k; ++kx)
            {
                _packed_weights[((c / kLanes) * k * k + ky * k + tap_slot(static_cast<int>(k), stride, static_cast<int>(kx))) * kLanes + c % kLanes] =
                    *reinterpret_cast<const float *>(_weights->buffer() + w.offset_element_in_bytes(Coordinates(c, kx, ky)));
            }
        }
        if(_biases != nullptr)
        {
            _bias[c] = *reinterpret_cast<const float *>(_biases->buffer() + _biases->info()->offset_element_in_bytes(Coordinates(c)));
        }
    }
    _weights->mark_as_unused(); // packed: the network frees the loaded copy
    _prepared = true;
}

void DepthwiseConvolution::rows(size_t first, size_t end) const
{
    const ITensorInfo &in = *_input->info(), &out = *_output->info();
    Shape              s{};
    s.in_w     = static_cast<int>(in.dimension(1));
    s.in_h     = static_cast<int>(in.dimension(2));
    s.pad_x    = static_cast<int>(_conv_info.pad_left());
    s.pad_y    = static_cast<int>(_conv_info.pad_top());
    s.channels = in.dimension(0);
    s.in_sx    = in.strides_in_bytes()[1];
    s.in_sy    = in.strides_in_bytes()[2];
    s.out_w    = out.dimension(1);
    s.out_sx   = out.strides_in_bytes()[1];
    s.out_sy   = out.strides_in_bytes()[2];
    s.src      = _input->buffer() + in.offset_first_element_in_bytes();
    s.dst      = _output->buffer() + out.offset_first_element_in_bytes();
    s.weights  = _packed_weights.data();
    s.bias     = _bias.data();
    s.lo       = _clamp.lo;
    s.hi       = _clamp.hi;
    const float bounds[2] = { _clamp.lo, _clamp.hi };
    s.bounds              = bounds;
    const unsigned flags  = _clamp.flags & 3;
    const bool     stride = _conv_info.stride().first == 2;
    const RowsFn   fn     = _kernel == 3 ? (stride ? rows_for<3, 2>(flags) : rows_for<3, 1>(flags)) : (stride ? rows_for<5, 2>(flags) : rows_for<5, 1>(flags));
    fn(s, first, end);
}

void DepthwiseConvolution::run()
{
    prepare();
    split(_output->info()->dimension(2), "DepthwiseConvolution", [this](size_t first, size_t end) { rows(first, end); });
}
} // namespace engine
