#include "quantized_convolution_nhwc.h"

#include "engine.h"
#include "int8_dot.h"
#include "quantized_convolution.h"

#include "arm_compute/core/Error.h"
#include "arm_compute/core/Helpers.h"
#include "arm_compute/core/Utils.h"
#include "arm_compute/core/Validate.h"
#include "arm_compute/runtime/NEON/NEScheduler.h"

#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

using namespace arm_compute;

namespace engine
{
namespace
{
constexpr size_t kBlock = 4;  // output channels per step
constexpr size_t kStepK = 16; // k per step

size_t round_up(size_t value, size_t step)
{
    return (value + step - 1) / step * step;
}

/** dst[i] = src[i] ^ 0x80 (unsigned to signed around 128) for n bytes. */
inline void copy_signed(int8_t *dst, const uint8_t *src, size_t n)
{
    const uint8x16_t sign = vdupq_n_u8(0x80);
    for(; n >= 16; n -= 16, src += 16, dst += 16)
    {
        vst1q_s8(dst, vreinterpretq_s8_u8(veorq_u8(vld1q_u8(src), sign)));
    }
    if(n >= 8)
    {
        vst1_s8(dst, vreinterpret_s8_u8(veor_u8(vld1_u8(src), vget_low_u8(sign))));
        n -= 8, src += 8, dst += 8;
    }
    for(; n > 0; --n)
    {
        *dst++ = static_cast<int8_t>(*src++ ^ 0x80);
    }
}


/** A pair's rows interleaved per 16 k (the layout the kernel loads in one instruction per step): for each of
 *  steps chunks, 16 bytes of pixel a then 16 of pixel b, each shifted to signed. */
inline void interleave_signed(int8_t *dst, const uint8_t *a, const uint8_t *b, size_t steps)
{
    const uint8x16_t sign = vdupq_n_u8(0x80);
    for(; steps > 0; --steps, a += kStepK, b += kStepK, dst += 2 * kStepK)
    {
        vst1q_s8(dst, vreinterpretq_s8_u8(veorq_u8(vld1q_u8(a), sign)));
        vst1q_s8(dst + kStepK, vreinterpretq_s8_u8(veorq_u8(vld1q_u8(b), sign)));
    }
}

// Per block: bias, left shift, multiplier, right shift, output zero point (4 x int32 each), then the clamp's low
// and high bounds as 8 bytes each (both pixels' 4 channels): 96 bytes, three loads.
constexpr size_t kConstants = 6 * kBlock;

#if defined(__arm__) && !defined(__aarch64__)
/** One block of 4 output channels for `pairs` pixel pairs, 4 channels x 2 pixels x 16 k per step, in armv7
 *  assembly: the tile takes all 16 q registers, which the compiler's allocation of the intrinsics version (below)
 *  does not manage without spills and copies. q0-q3 one step of the 4 channels' weights (w: steps x 64 bytes),
 *  q4/q5 one step of the pair's two rows (x: the pairs' interleaved rows, steps x 32 bytes each, back to back),
 *  q6/q7 products, q8-q11 pixel a's sums of channels 0-3, q12-q15 pixel b's. The first step starts the sums
 *  (vpaddl instead of zeroing), one more step when the remaining count is odd, then two steps per iteration.
 *  After the k loop: the 8 sums reduced to two vectors of 4 channel sums, the output stage of
 *  int8::store_requantized with the block's constants (96 bytes at c, kConstants, loaded per pair: no register is free
 *  for them over the k loop) and each pixel's 4 bytes stored at out[i] + channel0 (one 32-bit lane store). */
#define ENGINE_Q8_STEP(acc)                                                                                   \
    "vld1.8 {d0-d3}, [%[w]]!\n\t"                                                                             \
    "vld1.8 {d4-d7}, [%[w]]!\n\t"                                                                             \
    "vld1.8 {d8-d11}, [%[x]]!\n\t"                                                                            \
    "vmull.s8 q6, d0, d8\n\t"                                                                                 \
    "vmull.s8 q7, d2, d8\n\t"                                                                                 \
    "vmlal.s8 q6, d1, d9\n\t"                                                                                 \
    "vmlal.s8 q7, d3, d9\n\t" acc " q8, q6\n\t" acc " q9, q7\n\t"                                             \
    "vmull.s8 q6, d4, d8\n\t"                                                                                 \
    "vmull.s8 q7, d6, d8\n\t"                                                                                 \
    "vmlal.s8 q6, d5, d9\n\t"                                                                                 \
    "vmlal.s8 q7, d7, d9\n\t" acc " q10, q6\n\t" acc " q11, q7\n\t"                                           \
    "vmull.s8 q6, d0, d10\n\t"                                                                                \
    "vmull.s8 q7, d2, d10\n\t"                                                                                \
    "vmlal.s8 q6, d1, d11\n\t"                                                                                \
    "vmlal.s8 q7, d3, d11\n\t" acc " q12, q6\n\t" acc " q13, q7\n\t"                                          \
    "vmull.s8 q6, d4, d10\n\t"                                                                                \
    "vmull.s8 q7, d6, d10\n\t"                                                                                \
    "vmlal.s8 q6, d5, d11\n\t"                                                                                \
    "vmlal.s8 q7, d7, d11\n\t" acc " q14, q6\n\t" acc " q15, q7\n\t"

// The pair loop as one asm statement; left_shift: the output stage's shift left, or nothing.
#define ENGINE_Q8_PAIRS(left_shift)                                                                                                    \
    asm volatile(                                                                                                                      \
        "0:\n\t"                                                                                                                       \
        ENGINE_Q8_STEP("vpaddl.s16")                                                                                                   \
        "lsrs %[count], %[rest], #1\n\t" /* carry: one single step, zero: no double steps */                                           \
        "bcc 2f\n\t"                                                                                                                   \
        ENGINE_Q8_STEP("vpadal.s16")                                                                                                   \
        "2:\n\t"                                                                                                                       \
        "beq 3f\n"                                                                                                                     \
        "1:\n\t"                                                                                                                       \
        ENGINE_Q8_STEP("vpadal.s16")                                                                                                   \
        ENGINE_Q8_STEP("vpadal.s16")                                                                                                   \
        "subs %[count], %[count], #1\n\t"                                                                                              \
        "bne 1b\n"                                                                                                                     \
        "3:\n\t"                                                                                                                       \
        /* [sum c0, c1, c2, c3] of pixel a in q0, of pixel b in q1 */                                                                  \
        "vpadd.i32 d16, d16, d17\n\t"                                                                                                  \
        "vpadd.i32 d17, d18, d19\n\t"                                                                                                  \
        "vpadd.i32 d18, d20, d21\n\t"                                                                                                  \
        "vpadd.i32 d19, d22, d23\n\t"                                                                                                  \
        "vpadd.i32 d24, d24, d25\n\t"                                                                                                  \
        "vpadd.i32 d25, d26, d27\n\t"                                                                                                  \
        "vpadd.i32 d26, d28, d29\n\t"                                                                                                  \
        "vpadd.i32 d27, d30, d31\n\t"                                                                                                  \
        "vpadd.i32 d0, d16, d17\n\t"                                                                                                   \
        "vpadd.i32 d1, d18, d19\n\t"                                                                                                   \
        "vpadd.i32 d2, d24, d25\n\t"                                                                                                   \
        "vpadd.i32 d3, d26, d27\n\t"                                                                                                   \
        /* q2 bias, q3 left shift, q4 multiplier, q5 right shift, q6 output zero, d14 low and d15 high (bytes) */                      \
        "vld1.32 {d4-d7}, [%[c]]!\n\t"                                                                                                 \
        "vld1.32 {d8-d11}, [%[c]]!\n\t"                                                                                                \
        "vld1.32 {d12-d15}, [%[c]]\n\t"                                                                                                \
        "sub %[c], %[c], #64\n\t"                                                                                                      \
        "sub %[w], %[w], %[steps], lsl #6\n\t" /* back to the block's first weights */                                                 \
        "vadd.i32 q0, q0, q2\n\t"                                                                                                      \
        "vadd.i32 q1, q1, q2\n\t"                                                                                                      \
        left_shift                                                                                                                     \
        "vqrdmulh.s32 q0, q0, q4\n\t"                                                                                                  \
        "vqrdmulh.s32 q1, q1, q4\n\t"                                                                                                  \
        "vand q8, q0, q5\n\t"                                                                                                          \
        "vand q9, q1, q5\n\t"                                                                                                          \
        "vsra.s32 q0, q8, #31\n\t"                                                                                                     \
        "vsra.s32 q1, q9, #31\n\t"                                                                                                     \
        "vrshl.s32 q0, q0, q5\n\t"                                                                                                     \
        "vrshl.s32 q1, q1, q5\n\t"                                                                                                     \
        "vadd.i32 q0, q0, q6\n\t"                                                                                                      \
        "vadd.i32 q1, q1, q6\n\t"                                                                                                      \
        /* saturated to 0..255 while narrowing, then clamped to [low, high] (within 0..255: the same result as */                      \
        /* clamping the 32-bit values), both pixels in one d register */                                                               \
        "vqmovun.s32 d0, q0\n\t"                                                                                                       \
        "vqmovun.s32 d1, q1\n\t"                                                                                                       \
        "vqmovn.u16 d0, q0\n\t"                                                                                                        \
        "vmax.u8 d0, d0, d14\n\t"                                                                                                      \
        "vmin.u8 d0, d0, d15\n\t"                                                                                                      \
        "ldr %[dst], [%[out]], #4\n\t"                                                                                                 \
        "add %[dst], %[dst], %[channel0]\n\t"                                                                                          \
        "vst1.32 {d0[0]}, [%[dst]]\n\t"                                                                                                \
        "ldr %[dst], [%[out]], #4\n\t"                                                                                                 \
        "add %[dst], %[dst], %[channel0]\n\t"                                                                                          \
        "vst1.32 {d0[1]}, [%[dst]]\n\t"                                                                                                \
        "subs %[pairs], %[pairs], #1\n\t"                                                                                              \
        "bne 0b\n\t"                                                                                                                   \
        : [w] "+r"(w), [x] "+r"(x), [c] "+r"(c), [out] "+r"(out), [pairs] "+r"(pairs), [count] "=&r"(count), [dst] "=&r"(dst)          \
        : [rest] "r"(rest), [steps] "r"(steps), [channel0] "r"(channel0)                                                               \
        : "cc", "memory", "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9", "d10", "d11", "d12", "d13", "d14", "d15", "d16", \
          "d17", "d18", "d19", "d20", "d21", "d22", "d23", "d24", "d25", "d26", "d27", "d28", "d29", "d30", "d31")

/** left: whether any channel of the layer has a left shift (a multiplier above 1); without, the shift by 0 is left
 *  out. */
inline void block_pairs(const int8_t *w, const int8_t *x, size_t steps, const int32_t *c, uint8_t *const *out, size_t channel0, size_t pairs, bool left)
{
    const size_t rest = steps - 1;
    size_t       count, dst;
    if(left)
    {
        ENGINE_Q8_PAIRS("vshl.s32 q0, q0, q3\n\t"
                        "vshl.s32 q1, q1, q3\n\t");
    }
    else
    {
        ENGINE_Q8_PAIRS("");
    }
}
#undef ENGINE_Q8_STEP
#else
/** The same in intrinsics (aarch64 has 32 vector registers: no spills). */
inline void block_pairs(const int8_t *w, const int8_t *x, size_t steps, const int32_t *c, uint8_t *const *out, size_t channel0, size_t pairs, bool left)
{
    (void)left; // a shift by 0 costs one instruction here
    const uint8_t      *bounds = reinterpret_cast<const uint8_t *>(c + 5 * kBlock);
    const int8::Scaling s      = { vld1q_s32(c + 2 * kBlock), vld1q_s32(c + kBlock), vld1q_s32(c + 3 * kBlock) };
    const int32x4_t     bias = vld1q_s32(c), zero = vld1q_s32(c + 4 * kBlock), low = vdupq_n_s32(bounds[0]), high = vdupq_n_s32(bounds[8]);
    for(; pairs > 0; --pairs, out += 2)
    {
        const int8_t *wk = w;
        int32x4_t     a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for(size_t step = 0; step < steps; ++step, wk += kBlock * kStepK, x += 2 * kStepK)
        {
            const int8x16_t w0 = vld1q_s8(wk), w1 = vld1q_s8(wk + 16), w2 = vld1q_s8(wk + 32), w3 = vld1q_s8(wk + 48);
            const int8x16_t xa = vld1q_s8(x), xb = vld1q_s8(x + kStepK);
            a0 = int8::dot16(a0, w0, xa);
            a1 = int8::dot16(a1, w1, xa);
            a2 = int8::dot16(a2, w2, xa);
            a3 = int8::dot16(a3, w3, xa);
            b0 = int8::dot16(b0, w0, xb);
            b1 = int8::dot16(b1, w1, xb);
            b2 = int8::dot16(b2, w2, xb);
            b3 = int8::dot16(b3, w3, xb);
        }
        int8::store_requantized(int8::lane_sums(a0, a1, a2, a3), bias, s, zero, low, high, out[0] + channel0, kBlock);
        int8::store_requantized(int8::lane_sums(b0, b1, b2, b3), bias, s, zero, low, high, out[1] + channel0, kBlock);
    }
}
#endif

} // namespace

QuantizedConvolutionNhwc::QuantizedConvolutionNhwc(std::shared_ptr<IMemoryManager> memory_manager)
{
    (void)memory_manager;
}

Status QuantizedConvolutionNhwc::validate(const ITensorInfo *input, const ITensorInfo *weights, const ITensorInfo *biases, const ITensorInfo *output,
                                          const PadStrideInfo &conv_info, const ActivationLayerInfo &act)
{
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_type() != DataType::QASYMM8 || output->data_type() != DataType::QASYMM8, "input and output must be QASYMM8");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_layout() != DataLayout::NHWC || output->data_layout() != DataLayout::NHWC, "NHWC only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->strides_in_bytes()[0] != 1 || output->strides_in_bytes()[0] != 1, "a pixel's channels must lie back to back");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(weights->data_type() != DataType::QSYMM8_PER_CHANNEL || weights->quantization_info().scale().size() != weights->dimension(3),
                                    "weights must be QSYMM8_PER_CHANNEL with one scale per output channel");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(biases == nullptr || biases->data_type() != DataType::S32 || biases->dimension(0) != weights->dimension(3),
                                    "biases must be S32, one per output channel");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(weights->num_dimensions() > 4 || weights->dimension(0) != input->dimension(0),
                                    "weights must be [input channels, kw, kh, output channels] (OHWI)");
    const auto expected = scaled_dimensions(input->dimension(1), input->dimension(2), weights->dimension(1), weights->dimension(2), conv_info);
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(output->dimension(1) != expected.first || output->dimension(2) != expected.second || output->dimension(0) != weights->dimension(3),
                                    "output shape does not match the convolution");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(act.enabled() && act.activation() != ActivationLayerInfo::ActivationFunction::RELU
                                        && act.activation() != ActivationLayerInfo::ActivationFunction::BOUNDED_RELU
                                        && act.activation() != ActivationLayerInfo::ActivationFunction::LU_BOUNDED_RELU,
                                    "only ReLU, bounded ReLU and lower/upper bounded ReLU fuse into the output stage");
    return Status{};
}

void QuantizedConvolutionNhwc::configure(ITensor *input, ITensor *weights, ITensor *biases, ITensor *output, const PadStrideInfo &conv_info, const ActivationLayerInfo &act)
{
    ARM_COMPUTE_ERROR_THROW_ON(validate(input->info(), weights->info(), biases->info(), output->info(), conv_info, act));
    _input        = input;
    _weights      = weights;
    _biases       = biases;
    _output       = output;
    _conv_info    = conv_info;
    _channels     = input->info()->dimension(0);
    _kernel_w     = weights->info()->dimension(1);
    _kernel_h     = weights->info()->dimension(2);
    _k            = _kernel_w * _kernel_h * _channels;
    _padded_k     = round_up(_k, kStepK);
    _pixels       = output->info()->dimension(1) * output->info()->dimension(2);
    _out_channels = output->info()->dimension(0);

    OutputStage stage = output_stage(*input->info(), *weights->info(), *output->info(), _out_channels, round_up(_out_channels, kBlock), act);
    _input_zero  = stage.input_zero;
    _stage       = std::move(stage);
    _rows.assign(round_up(_pixels, 2) * _padded_k, 0);
    // One row buffer per part run() splits the pixel pairs into (gather writes its bytes [0, _k), the rest stays
    // zero), each on its own cache lines: no allocation in run(), no buffer shared by two threads.
    constexpr size_t kLine = 64;
    _parts                 = std::max<size_t>(1, NEScheduler::get().num_threads());
    _row_stride            = round_up(_padded_k, kLine);
    _row_buffers.assign(_parts * _row_stride + kLine, 0);
    _row_first = (kLine - reinterpret_cast<uintptr_t>(_row_buffers.data()) % kLine) % kLine;
    _out.assign(round_up(_pixels, 2), nullptr);
}

void QuantizedConvolutionNhwc::prepare()
{
    if(_prepared)
    {
        return;
    }
    const ITensorInfo &w      = *_weights->info();
    const size_t       blocks = round_up(_out_channels, kBlock) / kBlock;
    _packed.assign(blocks * kBlock * _padded_k, 0);
    _bias.assign(blocks * kBlock, 0);
    for(size_t n = 0; n < _out_channels; ++n)
    {
        int32_t sum = 0;
        for(size_t k = 0; k < _k; ++k)
        {
            const size_t c = k % _channels, tap = k / _channels;
            const auto   value = *reinterpret_cast<const int8_t *>(_weights->buffer() + w.offset_element_in_bytes(Coordinates(c, tap % _kernel_w, tap / _kernel_w, n)));
            _packed[(n / kBlock) * kBlock * _padded_k + (k / kStepK) * kBlock * kStepK + (n % kBlock) * kStepK + k % kStepK] = value;
            sum += value;
        }
        // sum w (x - zero) = sum w x' + (128 - zero) sum w, with x' = x - 128 the signed rows.
        _bias[n] = *reinterpret_cast<const int32_t *>(_biases->buffer() + _biases->info()->offset_element_in_bytes(Coordinates(n)))
                   + (128 - static_cast<int32_t>(_input_zero)) * sum;
    }
    _constants.assign(blocks * kConstants, 0);
    _left = false;
    for(size_t block = 0; block < blocks; ++block)
    {
        int32_t *c = _constants.data() + block * kConstants;
        for(size_t i = 0; i < kBlock; ++i)
        {
            const size_t n = block * kBlock + i;
            c[i]              = _bias[n];
            c[kBlock + i]     = _stage.left_shift[n];
            c[2 * kBlock + i] = _stage.multiplier[n];
            c[3 * kBlock + i] = _stage.right_shift[n];
            c[4 * kBlock + i] = _stage.output_zero;
            _left             = _left || _stage.left_shift[n] != 0;
        }
        auto *bounds = reinterpret_cast<uint8_t *>(c + 5 * kBlock);
        std::fill(bounds, bounds + 2 * kBlock, static_cast<uint8_t>(_stage.low));
        std::fill(bounds + 2 * kBlock, bounds + 4 * kBlock, static_cast<uint8_t>(_stage.high));
    }
    _prepared = true;
}

void QuantizedConvolutionNhwc::gather(size_t first, size_t end, size_t part)
{
    const ITensorInfo &in    = *_input->info();
    const size_t       in_w  = in.dimension(1), in_h = in.dimension(2);
    const size_t       in_sx = in.strides_in_bytes()[1], in_sy = in.strides_in_bytes()[2];
    const size_t       out_w = _output->info()->dimension(1);
    const size_t       sx = _conv_info.stride().first, sy = _conv_info.stride().second;
    const int          left = static_cast<int>(_conv_info.pad_left()), top = static_cast<int>(_conv_info.pad_top());
    const uint8_t     *base  = _input->buffer() + in.offset_first_element_in_bytes();
    const size_t       steps = _padded_k / kStepK;
    end                      = std::min(end, _pixels);
    // A 1x1 convolution at stride 1 without padding over densely stored pixels with K a multiple of 16 (the
    // squeeze layers and conv10): pixel p's row is the input's pixel p, interleaved straight from there.
    if(_kernel_w == 1 && _kernel_h == 1 && sx == 1 && sy == 1 && left == 0 && top == 0 && in_sx == _channels && in_sy == in_w * in_sx
       && out_w == in_w && _padded_k == _k)
    {
        for(size_t p = first; p < end; p += 2)
        {
            const uint8_t *a = base + p * in_sx;
            interleave_signed(_rows.data() + p * _padded_k, a, p + 1 < end ? a + in_sx : a, steps); // b: any values past the end
        }
        return;
    }
    const int8_t  padded = static_cast<int8_t>(_input_zero ^ 0x80);              // the input zero point, shifted
    const size_t  run    = _kernel_w * _channels;                                // one kernel row, when its pixels are dense
    int8_t *const row    = _row_buffers.data() + _row_first + part * _row_stride; // one pixel's row, then interleaved
    int           ox = static_cast<int>(first % out_w), oy = static_cast<int>(first / out_w);
    for(size_t p = first; p < end; ++p)
    {
        int8_t   *dst = row;
        const int x0  = ox * static_cast<int>(sx) - left;
        for(size_t ky = 0; ky < _kernel_h; ++ky)
        {
            const int iy = oy * static_cast<int>(sy) + static_cast<int>(ky) - top;
            if(iy < 0 || iy >= static_cast<int>(in_h))
            {
                std::memset(dst, padded, run);
                dst += run;
                continue;
            }
            const uint8_t *line = base + static_cast<size_t>(iy) * in_sy;
            if(x0 >= 0 && x0 + static_cast<int>(_kernel_w) <= static_cast<int>(in_w) && in_sx == _channels)
            {
                copy_signed(dst, line + static_cast<size_t>(x0) * in_sx, run);
                dst += run;
                continue;
            }
            for(size_t kx = 0; kx < _kernel_w; ++kx, dst += _channels)
            {
                const int ix = x0 + static_cast<int>(kx);
                if(ix < 0 || ix >= static_cast<int>(in_w))
                {
                    std::memset(dst, padded, _channels);
                }
                else
                {
                    copy_signed(dst, line + static_cast<size_t>(ix) * in_sx, _channels);
                }
            }
        }
        // row[_k, _padded_k) stays zero (zero weights there: any value would do)
        int8_t *pair = _rows.data() + (p & ~size_t(1)) * _padded_k + (p & 1) * kStepK;
        for(size_t j = 0; j < steps; ++j)
        {
            vst1q_s8(pair + 2 * kStepK * j, vld1q_s8(row + kStepK * j));
        }
        if(++ox == static_cast<int>(out_w))
        {
            ox = 0, ++oy;
        }
    }
}

void QuantizedConvolutionNhwc::compute(size_t first_pair, size_t end_pair)
{
    const size_t blocks = round_up(_out_channels, kBlock) / kBlock;
    const size_t steps  = _padded_k / kStepK;
    const size_t whole  = std::max(first_pair, std::min(end_pair, _pixels / 2)); // pairs before it have two pixels
    for(size_t block = 0; block < blocks; ++block)
    {
        const size_t   channel0  = block * kBlock;
        const size_t   channels  = std::min(kBlock, _out_channels - channel0);
        const int8_t  *w_block   = _packed.data() + block * kBlock * _padded_k;
        const int32_t *constants = _constants.data() + block * kConstants;
        size_t         pair      = first_pair;
        if(channels == kBlock && whole > first_pair)
        {
            block_pairs(w_block, _rows.data() + 2 * pair * _padded_k, steps, constants, _out.data() + 2 * pair, channel0, whole - first_pair, _left);
            pair = whole;
        }
        // Fewer than 4 channels, or the last pixel alone: through a buffer.
        for(; pair < end_pair; ++pair)
        {
            uint8_t        tail[2 * kBlock];
            uint8_t *const dst[2] = { tail, tail + kBlock };
            block_pairs(w_block, _rows.data() + 2 * pair * _padded_k, steps, constants, dst, 0, 1, _left);
            for(size_t i = 0; i < 2 && 2 * pair + i < _pixels; ++i)
            {
                std::memcpy(_out[2 * pair + i] + channel0, dst[i], channels);
            }
        }
    }
}

void QuantizedConvolutionNhwc::run()
{
    prepare();
    // Output pixel addresses: the output may be a channel range of a wider tensor, at any strides.
    const ITensorInfo &out   = *_output->info();
    const size_t       out_w = out.dimension(1), out_h = out.dimension(2);
    uint8_t           *base  = _output->buffer() + out.offset_first_element_in_bytes();
    size_t             p     = 0;
    for(size_t y = 0; y < out_h; ++y)
    {
        for(size_t x = 0; x < out_w; ++x, ++p)
        {
            _out[p] = base + y * out.strides_in_bytes()[2] + x * out.strides_in_bytes()[1];
        }
    }
    const size_t pairs = round_up(_pixels, 2) / 2;
    split(pairs, _parts, "QuantizedConvolutionNhwc", [this](size_t first, size_t end, size_t part) {
        gather(2 * first, 2 * end, part);
        compute(first, end);
    });
}
} // namespace engine
