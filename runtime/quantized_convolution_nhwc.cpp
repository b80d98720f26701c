#include "quantized_convolution_nhwc.h"

#include "engine.h"
#include "int8_dot.h"
#include "quantized_convolution.h"

#include "arm_compute/core/Error.h"
#include "arm_compute/core/Helpers.h"
#include "arm_compute/core/Utils.h"
#include "arm_compute/core/Validate.h"

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


constexpr size_t kConstants = 7 * kBlock; // per block: bias, left shift, multiplier, right shift, zero, low, high

#if defined(__arm__) && !defined(__aarch64__)
/** 4 output channels x 2 pixels over steps x 16 k (armv7: all 16 q registers, which the compiler's register
 *  allocation of the intrinsics below does not manage without spills and copies): the weights of 4 channels
 *  (w: per step 4 x 16 bytes), rows x0 and x1; then the 8 sums reduced to two vectors of 4 channel sums, the
 *  output stage of int8::store_requantized with the block's constants (7 vectors of 4 at c, loaded here, not kept
 *  live over the k loop) and each pixel's 4 bytes stored at out0 and out1 (one 32-bit lane store each). The first
 *  step starts the sums (vpaddl) instead of zeroing them; then two steps per loop iteration, and one more when the
 *  step count is even. q0-q3 weights, q4/q5 one step of x0/x1, q6/q7 products, q8-q11 pixel 0's sums of channels
 *  0-3, q12-q15 pixel 1's. */
#define ENGINE_Q8_STEP(acc)                                                                                   \
    "vld1.8 {d0-d3}, [%[w]]!\n\t"                                                                             \
    "vld1.8 {d4-d7}, [%[w]]!\n\t"                                                                             \
    "vld1.8 {d8-d9}, [%[x0]]!\n\t"                                                                            \
    "vld1.8 {d10-d11}, [%[x1]]!\n\t"                                                                          \
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

inline __attribute__((always_inline)) void block_pair(const int8_t *w, const int8_t *x0, const int8_t *x1, size_t steps, const int32_t *c, uint8_t *out0, uint8_t *out1)
{
    size_t       pairs = (steps - 1) / 2;
    const size_t odd   = (steps - 1) % 2;
    asm volatile(
        ENGINE_Q8_STEP("vpaddl.s16")
        "cmp %[pairs], #0\n\t"
        "beq 2f\n"
        "1:\n\t"
        ENGINE_Q8_STEP("vpadal.s16")
        ENGINE_Q8_STEP("vpadal.s16")
        "subs %[pairs], %[pairs], #1\n\t"
        "bne 1b\n"
        "2:\n\t"
        "cmp %[odd], #0\n\t"
        "beq 3f\n\t"
        ENGINE_Q8_STEP("vpadal.s16")
        "3:\n\t"
        // [sum c0, c1, c2, c3] of pixel 0 in q0, of pixel 1 in q1
        "vpadd.i32 d16, d16, d17\n\t"
        "vpadd.i32 d17, d18, d19\n\t"
        "vpadd.i32 d18, d20, d21\n\t"
        "vpadd.i32 d19, d22, d23\n\t"
        "vpadd.i32 d24, d24, d25\n\t"
        "vpadd.i32 d25, d26, d27\n\t"
        "vpadd.i32 d26, d28, d29\n\t"
        "vpadd.i32 d27, d30, d31\n\t"
        "vpadd.i32 d0, d16, d17\n\t"
        "vpadd.i32 d1, d18, d19\n\t"
        "vpadd.i32 d2, d24, d25\n\t"
        "vpadd.i32 d3, d26, d27\n\t"
        // q2 bias, q3 left shift, q4 multiplier, q5 right shift, q6 output zero, q7 low, q8 high
        "vld1.32 {d4-d7}, [%[c]]!\n\t"
        "vld1.32 {d8-d11}, [%[c]]!\n\t"
        "vld1.32 {d12-d15}, [%[c]]!\n\t"
        "vld1.32 {d16-d17}, [%[c]]\n\t"
        "vadd.i32 q0, q0, q2\n\t"
        "vadd.i32 q1, q1, q2\n\t"
        "vshl.s32 q0, q0, q3\n\t"
        "vshl.s32 q1, q1, q3\n\t"
        "vqrdmulh.s32 q0, q0, q4\n\t"
        "vqrdmulh.s32 q1, q1, q4\n\t"
        "vand q9, q0, q5\n\t"
        "vand q10, q1, q5\n\t"
        "vsra.s32 q0, q9, #31\n\t"
        "vsra.s32 q1, q10, #31\n\t"
        "vrshl.s32 q0, q0, q5\n\t"
        "vrshl.s32 q1, q1, q5\n\t"
        "vadd.i32 q0, q0, q6\n\t"
        "vadd.i32 q1, q1, q6\n\t"
        "vmax.s32 q0, q0, q7\n\t"
        "vmax.s32 q1, q1, q7\n\t"
        "vmin.s32 q0, q0, q8\n\t"
        "vmin.s32 q1, q1, q8\n\t"
        "vmovn.i32 d0, q0\n\t"
        "vmovn.i32 d1, q1\n\t"
        "vmovn.i16 d0, q0\n\t"
        "vst1.32 {d0[0]}, [%[out0]]\n\t"
        "vst1.32 {d0[1]}, [%[out1]]\n\t"
        : [w] "+r"(w), [x0] "+r"(x0), [x1] "+r"(x1), [pairs] "+r"(pairs), [c] "+r"(c)
        : [odd] "r"(odd), [out0] "r"(out0), [out1] "r"(out1)
        : "cc", "memory", "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9", "d10", "d11", "d12", "d13", "d14", "d15", "d16",
          "d17", "d18", "d19", "d20", "d21", "d22", "d23", "d24", "d25", "d26", "d27", "d28", "d29", "d30", "d31");
}
#undef ENGINE_Q8_STEP
#else
/** The same 4 output channels x 2 pixels in intrinsics (aarch64 has 32 vector registers: no spills). */
inline __attribute__((always_inline)) void block_pair(const int8_t *w, const int8_t *x0, const int8_t *x1, size_t steps, const int32_t *c, uint8_t *out0, uint8_t *out1)
{
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    for(size_t step = 0; step < steps; ++step, w += kBlock * kStepK, x0 += kStepK, x1 += kStepK)
    {
        const int8x16_t w0 = vld1q_s8(w), w1 = vld1q_s8(w + 16), w2 = vld1q_s8(w + 32), w3 = vld1q_s8(w + 48);
        const int8x16_t xa = vld1q_s8(x0), xb = vld1q_s8(x1);
        a0 = int8::dot16(a0, w0, xa);
        a1 = int8::dot16(a1, w1, xa);
        a2 = int8::dot16(a2, w2, xa);
        a3 = int8::dot16(a3, w3, xa);
        b0 = int8::dot16(b0, w0, xb);
        b1 = int8::dot16(b1, w1, xb);
        b2 = int8::dot16(b2, w2, xb);
        b3 = int8::dot16(b3, w3, xb);
    }
    const int8::Scaling s = { vld1q_s32(c + 2 * kBlock), vld1q_s32(c + kBlock), vld1q_s32(c + 3 * kBlock) };
    const int32x4_t     bias = vld1q_s32(c), zero = vld1q_s32(c + 4 * kBlock), low = vld1q_s32(c + 5 * kBlock), high = vld1q_s32(c + 6 * kBlock);
    int8::store_requantized(int8::lane_sums(a0, a1, a2, a3), bias, s, zero, low, high, out0, kBlock);
    int8::store_requantized(int8::lane_sums(b0, b1, b2, b3), bias, s, zero, low, high, out1, kBlock);
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
            c[5 * kBlock + i] = _stage.low;
            c[6 * kBlock + i] = _stage.high;
        }
    }
    _prepared = true;
}

void QuantizedConvolutionNhwc::gather(size_t first, size_t end)
{
    const ITensorInfo &in     = *_input->info();
    const size_t       in_w   = in.dimension(1), in_h = in.dimension(2);
    const size_t       in_sx  = in.strides_in_bytes()[1], in_sy = in.strides_in_bytes()[2];
    const size_t       out_w  = _output->info()->dimension(1);
    const size_t       sx     = _conv_info.stride().first, sy = _conv_info.stride().second;
    const int          left   = static_cast<int>(_conv_info.pad_left()), top = static_cast<int>(_conv_info.pad_top());
    const uint8_t     *base   = _input->buffer() + in.offset_first_element_in_bytes();
    const int8_t       padded = static_cast<int8_t>(_input_zero ^ 0x80); // the input zero point, shifted
    const size_t       run    = _kernel_w * _channels;                   // one kernel row, when its pixels are dense
    for(size_t p = first; p < end; ++p)
    {
        int8_t *dst = _rows.data() + p * _padded_k;
        if(p >= _pixels) // the pair's second pixel past the end: any values, never stored
        {
            continue;
        }
        const int ox = static_cast<int>(p % out_w), oy = static_cast<int>(p / out_w);
        const int x0 = ox * static_cast<int>(sx) - left;
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
        std::memset(dst, 0, _padded_k - _k); // zero weights there: any value would do
    }
}

void QuantizedConvolutionNhwc::compute(size_t first_pair, size_t end_pair)
{
    const size_t blocks = round_up(_out_channels, kBlock) / kBlock;
    const size_t steps  = _padded_k / kStepK;
    for(size_t block = 0; block < blocks; ++block)
    {
        const size_t   channel0  = block * kBlock;
        const size_t   channels  = std::min(kBlock, _out_channels - channel0);
        const int8_t  *w_block   = _packed.data() + block * kBlock * _padded_k;
        const int32_t *constants = _constants.data() + block * kConstants;
        for(size_t pair = first_pair; pair < end_pair; ++pair)
        {
            const int8_t *x0   = _rows.data() + 2 * pair * _padded_k;
            const bool    both = 2 * pair + 1 < _pixels;
            const bool    full = channels == kBlock && both; // else through tail: fewer channels, or one pixel
            uint8_t       tail[2 * kBlock];
            block_pair(w_block, x0, x0 + _padded_k, steps, constants, full ? _out[2 * pair] + channel0 : tail,
                       full ? _out[2 * pair + 1] + channel0 : tail + kBlock);
            if(!full)
            {
                std::memcpy(_out[2 * pair] + channel0, tail, channels);
                if(both)
                {
                    std::memcpy(_out[2 * pair + 1] + channel0, tail + kBlock, channels);
                }
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
    split(pairs, "QuantizedConvolutionNhwc", [this](size_t first, size_t end) {
        gather(2 * first, 2 * end);
        compute(first, end);
    });
}
} // namespace engine
