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
    const int32x4_t low    = vdupq_n_s32(_stage.low);
    const int32x4_t high   = vdupq_n_s32(_stage.high);
    const int32x4_t zero   = vdupq_n_s32(_stage.output_zero);
    const size_t      blocks = round_up(_out_channels, kBlock) / kBlock;
    for(size_t block = 0; block < blocks; ++block)
    {
        const size_t      channel0 = block * kBlock;
        const size_t      channels = std::min(kBlock, _out_channels - channel0);
        const int8_t     *w_block  = _packed.data() + block * kBlock * _padded_k;
        const int32x4_t   bias     = vld1q_s32(_bias.data() + channel0);
        const int8::Scaling m = { vld1q_s32(_stage.multiplier.data() + channel0), vld1q_s32(_stage.left_shift.data() + channel0),
                                  vld1q_s32(_stage.right_shift.data() + channel0) };
        for(size_t pair = first_pair; pair < end_pair; ++pair)
        {
            const int8_t *x0 = _rows.data() + 2 * pair * _padded_k, *x1 = x0 + _padded_k;
            const int8_t *w = w_block, *const w_end = w_block + kBlock * _padded_k;
            // Named accumulators (an array indexed by a loop variable would live in memory, not registers).
            int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            for(; w != w_end; w += kBlock * kStepK, x0 += kStepK, x1 += kStepK)
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
            const int32x4_t sums[2] = { int8::lane_sums(a0, a1, a2, a3), int8::lane_sums(b0, b1, b2, b3) };
            for(size_t i = 0; i < 2 && 2 * pair + i < _pixels; ++i)
            {
                int8::store_requantized(sums[i], bias, m, zero, low, high, _out[2 * pair + i] + channel0, channels);
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
