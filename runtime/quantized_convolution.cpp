#include "quantized_convolution.h"

#include "int8_dot.h"

#include "arm_compute/core/Error.h"
#include "arm_compute/core/Helpers.h"
#include "arm_compute/core/Utils.h"
#include "arm_compute/core/Validate.h"
#include "arm_compute/runtime/MemoryGroup.h"
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
constexpr size_t kBlockChannels = 4;
constexpr size_t kBlockPixels   = 8;
constexpr size_t kDotMinimumK   = 64;  // from here on the 8-bit-product kernel needs fewer instructions
constexpr size_t kDotK          = 16;  // k per step of the 8-bit-product kernel
constexpr size_t kDotPixels     = 4;

size_t round_up(size_t value, size_t step)
{
    return (value + step - 1) / step * step;
}

/** Whether a 3-D tensor's planes lie back to back with no padding (the planes are then matrix rows). */
bool dense(const ITensorInfo &info)
{
    const Strides &strides = info.strides_in_bytes();
    return strides[1] == info.dimension(0) && strides[2] == strides[1] * info.dimension(1);
}

bool one_by_one(const ITensorInfo &weights, const PadStrideInfo &conv_info)
{
    return weights.dimension(0) == 1 && weights.dimension(1) == 1 && conv_info.stride() == std::make_pair(1U, 1U) && !conv_info.has_padding();
}

/** One channel's scaling in all four lanes. */
int8::Scaling channel_scaling(const OutputStage &stage, size_t c)
{
    return { vdupq_n_s32(stage.multiplier[c]), vdupq_n_s32(stage.left_shift[c]), vdupq_n_s32(stage.right_shift[c]) };
}

uint8_t *plane(ITensor &tensor, size_t channel)
{
    return tensor.buffer() + tensor.info()->offset_element_in_bytes(Coordinates(0, 0, channel));
}
} // namespace

QuantizedConvolution::QuantizedConvolution(std::shared_ptr<IMemoryManager> memory_manager)
    : _memory_group(std::move(memory_manager))
{
}

void quantize_multiplier(double real, int32_t &significand, int &shift)
{
    significand = 0;
    shift       = 0;
    if(real == 0.)
    {
        return;
    }
    const double fraction = std::frexp(real, &shift); // real = fraction x 2^shift, fraction in [0.5, 1)
    int64_t      fixed    = static_cast<int64_t>(std::round(fraction * static_cast<double>(int64_t(1) << 31)));
    if(fixed == (int64_t(1) << 31)) // rounded up to 1.0
    {
        fixed /= 2;
        ++shift;
    }
    if(shift < -31) // below 2^-31: the product is 0 anyway
    {
        shift = 0;
        fixed = 0;
    }
    significand = static_cast<int32_t>(fixed);
}

OutputStage output_stage(const ITensorInfo &input, const ITensorInfo &weights, const ITensorInfo &output, size_t out_channels, size_t padded_channels,
                         const ActivationLayerInfo &act)
{
    const UniformQuantizationInfo in  = input.quantization_info().uniform();
    const UniformQuantizationInfo out = output.quantization_info().uniform();
    OutputStage                   stage;
    stage.input_zero     = static_cast<uint8_t>(in.offset);
    stage.output_zero    = out.offset;
    // TFLite's activation range: the bound's value / scale in float, rounded half away from zero, + zero point
    const auto quantize = [&](float value) { return std::min(255, std::max(0, static_cast<int32_t>(std::round(value / out.scale)) + out.offset)); };
    if(act.enabled())
    {
        stage.low = quantize(act.activation() == ActivationLayerInfo::ActivationFunction::LU_BOUNDED_RELU ? act.b() : 0.f);
        if(act.activation() != ActivationLayerInfo::ActivationFunction::RELU)
        {
            stage.high = quantize(act.a());
        }
    }
    const std::vector<float> weight_scales = weights.quantization_info().scale();
    stage.multiplier.assign(padded_channels, 0);
    stage.left_shift.assign(padded_channels, 0);
    stage.right_shift.assign(padded_channels, 0);
    for(size_t c = 0; c < out_channels; ++c)
    {
        int shift = 0;
        quantize_multiplier(static_cast<double>(in.scale) * static_cast<double>(weight_scales[c]) / static_cast<double>(out.scale), stage.multiplier[c], shift);
        stage.left_shift[c]  = std::max(shift, 0);
        stage.right_shift[c] = std::min(shift, 0);
    }
    return stage;
}

Status QuantizedConvolution::validate(const ITensorInfo *input, const ITensorInfo *weights, const ITensorInfo *biases, const ITensorInfo *output,
                                      const PadStrideInfo &conv_info, const ActivationLayerInfo &act)
{
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_type() != DataType::QASYMM8 || output->data_type() != DataType::QASYMM8, "input and output must be QASYMM8");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_layout() != DataLayout::NCHW, "NCHW only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(weights->data_type() != DataType::QSYMM8_PER_CHANNEL || weights->quantization_info().scale().size() != weights->dimension(3),
                                    "weights must be QSYMM8_PER_CHANNEL with one scale per output channel");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(biases->data_type() != DataType::S32 || biases->dimension(0) != weights->dimension(3), "biases must be S32, one per output channel");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(weights->dimension(2) != input->dimension(2), "weights must be [kw, kh, input channels, output channels]");
    const auto expected = scaled_dimensions(input->dimension(0), input->dimension(1), weights->dimension(0), weights->dimension(1), conv_info);
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(output->dimension(0) != expected.first || output->dimension(1) != expected.second || output->dimension(2) != weights->dimension(3),
                                    "output shape does not match the convolution");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(act.enabled() && act.activation() != ActivationLayerInfo::ActivationFunction::RELU
                                        && act.activation() != ActivationLayerInfo::ActivationFunction::BOUNDED_RELU
                                        && act.activation() != ActivationLayerInfo::ActivationFunction::LU_BOUNDED_RELU,
                                    "only ReLU, bounded ReLU and lower/upper bounded ReLU fuse into the output stage");
    return Status{};
}

void QuantizedConvolution::configure(ITensor *input, ITensor *weights, ITensor *biases, ITensor *output, const PadStrideInfo &conv_info, const ActivationLayerInfo &act)
{
    ARM_COMPUTE_ERROR_THROW_ON(validate(input->info(), weights->info(), biases->info(), output->info(), conv_info, act));
    _input         = input;
    _weights       = weights;
    _biases        = biases;
    _output        = output;
    _conv_info     = conv_info;
    _k             = weights->info()->dimension(0) * weights->info()->dimension(1) * weights->info()->dimension(2);
    _pixels        = output->info()->dimension(0) * output->info()->dimension(1);
    _padded_pixels = round_up(_pixels, kBlockPixels);
    _out_channels  = output->info()->dimension(2);

    OutputStage stage = output_stage(*input->info(), *weights->info(), *output->info(), _out_channels, round_up(_out_channels, kBlockChannels), act);
    _input_zero  = stage.input_zero;
    _stage       = std::move(stage);

    // X is the input itself only when its planes are the rows and every 8-pixel load stays inside them. Whether
    // the planes end up back to back is known only at run time (later functions may pad the tensors), so the
    // scratch matrices exist either way; they live in the shared scratch pool.
    _dot          = _k >= kDotMinimumK;
    _padded_k     = _dot ? round_up(_k, kDotK) : _k;
    _input_direct = !_dot && one_by_one(*weights->info(), conv_info) && _pixels % kBlockPixels == 0;
    _columns.allocator()->init(TensorInfo(TensorShape(_padded_pixels, _padded_k), 1, DataType::U8));
    _staging.allocator()->init(TensorInfo(TensorShape(_padded_pixels, _out_channels), 1, DataType::U8));
    _memory_group.manage(&_columns);
    _memory_group.manage(&_staging);
    if(_dot)
    {
        _rows.allocator()->init(TensorInfo(TensorShape(_padded_k, _padded_pixels), 1, DataType::S8));
        _memory_group.manage(&_rows);
        _rows.allocator()->allocate();
    }
    _columns.allocator()->allocate();
    _staging.allocator()->allocate();
}

void QuantizedConvolution::prepare()
{
    if(_prepared)
    {
        return;
    }
    // The weights are [Cout][K] (OIHW); biases are at input scale x weight scale.
    const auto *w      = reinterpret_cast<const int8_t *>(_weights->buffer() + _weights->info()->offset_first_element_in_bytes());
    const auto *b      = reinterpret_cast<const int32_t *>(_biases->buffer() + _biases->info()->offset_first_element_in_bytes());
    const size_t blocks = round_up(_out_channels, kBlockChannels) / kBlockChannels;
    if(_dot)
    {
        _packed8.assign(blocks * kBlockChannels * _padded_k, 0);
    }
    else
    {
        _packed.assign(blocks * _k * kBlockChannels, 0);
    }
    _bias.assign(blocks * kBlockChannels, 0);
    // sum w (x - zero) = sum w x' + (128 - zero) sum w, with x' = x - 128 the long-sum kernel's signed input.
    const int32_t shift = _dot ? 128 - static_cast<int32_t>(_input_zero) : -static_cast<int32_t>(_input_zero);
    for(size_t c = 0; c < _out_channels; ++c)
    {
        int32_t sum = 0;
        for(size_t k = 0; k < _k; ++k)
        {
            const int8_t value = w[c * _k + k];
            if(_dot)
            {
                _packed8[c * _padded_k + k] = value;
            }
            else
            {
                _packed[(c / kBlockChannels) * _k * kBlockChannels + k * kBlockChannels + c % kBlockChannels] = value;
            }
            sum += value;
        }
        _bias[c] = b[c] + shift * sum;
    }
    _prepared = true;
}

const uint8_t *QuantizedConvolution::columns()
{
    const ITensorInfo &info = *_input->info();
    if(_input_direct && dense(info))
    {
        return plane(*_input, 0);
    }
    const size_t in_w = info.dimension(0), in_h = info.dimension(1), channels = info.dimension(2);
    const size_t kw = _weights->info()->dimension(0), kh = _weights->info()->dimension(1);
    const size_t out_w = _output->info()->dimension(0), out_h = _output->info()->dimension(1);
    const size_t sx = _conv_info.stride().first, sy = _conv_info.stride().second;
    const int    left = static_cast<int>(_conv_info.pad_left()), top = static_cast<int>(_conv_info.pad_top());
    uint8_t     *row  = _columns.buffer();
    const size_t row_stride = _columns.info()->strides_in_bytes()[1];
    for(size_t c = 0; c < channels; ++c)
    {
        const uint8_t *src = plane(*_input, c);
        const size_t   src_stride = info.strides_in_bytes()[1];
        for(size_t ky = 0; ky < kh; ++ky)
        {
            for(size_t kx = 0; kx < kw; ++kx, row += row_stride)
            {
                uint8_t *dst = row;
                for(size_t oy = 0; oy < out_h; ++oy, dst += out_w)
                {
                    const int iy = static_cast<int>(oy * sy + ky) - top;
                    if(iy < 0 || iy >= static_cast<int>(in_h))
                    {
                        std::memset(dst, _input_zero, out_w);
                        continue;
                    }
                    const uint8_t *line = src + static_cast<size_t>(iy) * src_stride;
                    // Output columns whose input column ix = ox * sx + kx - left lies inside the row.
                    const int first = std::max(0, (left - static_cast<int>(kx) + static_cast<int>(sx) - 1) / static_cast<int>(sx));
                    const int last  = std::min(static_cast<int>(out_w), (static_cast<int>(in_w) + left - static_cast<int>(kx) + static_cast<int>(sx) - 1) / static_cast<int>(sx));
                    std::memset(dst, _input_zero, static_cast<size_t>(std::max(first, 0)));
                    if(last > first)
                    {
                        const uint8_t *from = line + (first * static_cast<int>(sx) + static_cast<int>(kx) - left);
                        if(sx == 1)
                        {
                            std::memcpy(dst + first, from, static_cast<size_t>(last - first));
                        }
                        else
                        {
                            for(int ox = first; ox < last; ++ox, from += sx)
                            {
                                dst[ox] = *from;
                            }
                        }
                        std::memset(dst + last, _input_zero, out_w - static_cast<size_t>(last));
                    }
                    else
                    {
                        std::memset(dst, _input_zero, out_w);
                    }
                }
                std::memset(row + _pixels, _input_zero, _padded_pixels - _pixels);
            }
        }
    }
    for(size_t k = _k; k < _padded_k; ++k, row += row_stride)
    {
        std::memset(row, 0x80, _padded_pixels); // padding of K: zero weights, any value; 0 once shifted
    }
    return _columns.buffer();
}

void QuantizedConvolution::compute_channels(size_t first_block, size_t end_block, const uint8_t *x)
{
    const size_t x_stride   = _input_direct && dense(*_input->info()) ? _pixels : _columns.info()->strides_in_bytes()[1];
    const bool   direct_out = _output_direct;
    const size_t out_stride = direct_out ? _pixels : _staging.info()->strides_in_bytes()[1];
    uint8_t     *out_base   = direct_out ? plane(*_output, 0) : _staging.buffer();
    const int32x4_t low  = vdupq_n_s32(_stage.low);
    const int32x4_t high = vdupq_n_s32(_stage.high);
    const int32x4_t zero = vdupq_n_s32(_stage.output_zero);

    for(size_t block = first_block; block < end_block; ++block)
    {
        const int16_t *w        = _packed.data() + block * _k * kBlockChannels;
        const size_t   channel0 = block * kBlockChannels;
        const size_t   channels = std::min(kBlockChannels, _out_channels - channel0);
        for(size_t p = 0; p < _padded_pixels; p += kBlockPixels)
        {
            // Named accumulators: an array indexed later by a loop variable would live in memory, not registers.
            int32x4_t      a00 = vdupq_n_s32(0), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
            const uint8_t *xp = x + p;
            const int16_t *wp = w;
            for(size_t k = 0; k < _k; ++k, xp += x_stride, wp += kBlockChannels)
            {
                const int16x8_t xs = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(xp)));
                const int16x4_t wk = vld1_s16(wp);
                const int16x4_t lo = vget_low_s16(xs), hi = vget_high_s16(xs);
                a00 = vmlal_lane_s16(a00, lo, wk, 0);
                a01 = vmlal_lane_s16(a01, hi, wk, 0);
                a10 = vmlal_lane_s16(a10, lo, wk, 1);
                a11 = vmlal_lane_s16(a11, hi, wk, 1);
                a20 = vmlal_lane_s16(a20, lo, wk, 2);
                a21 = vmlal_lane_s16(a21, hi, wk, 2);
                a30 = vmlal_lane_s16(a30, lo, wk, 3);
                a31 = vmlal_lane_s16(a31, hi, wk, 3);
            }
            const int32x4_t acc[kBlockChannels][2] = { { a00, a01 }, { a10, a11 }, { a20, a21 }, { a30, a31 } };
            const size_t valid = std::min(kBlockPixels, _pixels - p);
            for(size_t c = 0; c < channels; ++c)
            {
                const int32x4_t     bias = vdupq_n_s32(_bias[channel0 + c]);
                const int8::Scaling s    = channel_scaling(_stage, channel0 + c);
                const uint8x8_t     bytes
                    = vmovn_u16(vcombine_u16(int8::requantized(acc[c][0], bias, s, zero, low, high), int8::requantized(acc[c][1], bias, s, zero, low, high)));
                uint8_t        *dst   = out_base + (channel0 + c) * out_stride + p;
                if(valid == kBlockPixels)
                {
                    vst1_u8(dst, bytes);
                }
                else
                {
                    uint8_t tail[kBlockPixels];
                    vst1_u8(tail, bytes);
                    std::memcpy(dst, tail, valid);
                }
            }
        }
    }
}

const int8_t *QuantizedConvolution::transposed(const uint8_t *x)
{
    const size_t     x_stride    = _columns.info()->strides_in_bytes()[1];
    const size_t     row_stride  = _rows.info()->strides_in_bytes()[1];
    const uint8x8_t  sign        = vdup_n_u8(0x80);
    auto            *rows        = reinterpret_cast<uint8_t *>(_rows.buffer());
    for(size_t k = 0; k < _padded_k; k += 8)
    {
        for(size_t p = 0; p < _padded_pixels; p += 8)
        {
            const uint8_t *src = x + k * x_stride + p;
            uint8x8_t      r[8];
            for(int i = 0; i < 8; ++i)
            {
                r[i] = veor_u8(vld1_u8(src + i * x_stride), sign);
            }
            // 8x8 byte transpose: swap bytes, then 16-bit pairs, then 32-bit halves between row pairs.
            const uint8x8x2_t  t01 = vtrn_u8(r[0], r[1]), t23 = vtrn_u8(r[2], r[3]), t45 = vtrn_u8(r[4], r[5]), t67 = vtrn_u8(r[6], r[7]);
            const uint16x4x2_t u02 = vtrn_u16(vreinterpret_u16_u8(t01.val[0]), vreinterpret_u16_u8(t23.val[0]));
            const uint16x4x2_t u13 = vtrn_u16(vreinterpret_u16_u8(t01.val[1]), vreinterpret_u16_u8(t23.val[1]));
            const uint16x4x2_t u46 = vtrn_u16(vreinterpret_u16_u8(t45.val[0]), vreinterpret_u16_u8(t67.val[0]));
            const uint16x4x2_t u57 = vtrn_u16(vreinterpret_u16_u8(t45.val[1]), vreinterpret_u16_u8(t67.val[1]));
            const uint32x2x2_t v04 = vtrn_u32(vreinterpret_u32_u16(u02.val[0]), vreinterpret_u32_u16(u46.val[0]));
            const uint32x2x2_t v26 = vtrn_u32(vreinterpret_u32_u16(u02.val[1]), vreinterpret_u32_u16(u46.val[1]));
            const uint32x2x2_t v15 = vtrn_u32(vreinterpret_u32_u16(u13.val[0]), vreinterpret_u32_u16(u57.val[0]));
            const uint32x2x2_t v37 = vtrn_u32(vreinterpret_u32_u16(u13.val[1]), vreinterpret_u32_u16(u57.val[1]));
            const uint32x2_t   columns[8] = { v04.val[0], v15.val[0], v26.val[0], v37.val[0], v04.val[1], v15.val[1], v26.val[1], v37.val[1] };
            uint8_t           *dst        = rows + p * row_stride + k;
            for(int i = 0; i < 8; ++i)
            {
                vst1_u8(dst + i * row_stride, vreinterpret_u8_u32(columns[i]));
            }
        }
    }
    return reinterpret_cast<const int8_t *>(rows);
}


void QuantizedConvolution::compute_dot(size_t first_pair, size_t end_pair, const int8_t *rows)
{
    const size_t row_stride = _rows.info()->strides_in_bytes()[1];
    const size_t out_stride = _output_direct ? _pixels : _staging.info()->strides_in_bytes()[1];
    uint8_t     *out_base   = _output_direct ? plane(*_output, 0) : _staging.buffer();
    const int32x4_t low  = vdupq_n_s32(_stage.low);
    const int32x4_t high = vdupq_n_s32(_stage.high);
    const int32x4_t zero = vdupq_n_s32(_stage.output_zero);
    for(size_t pair = first_pair; pair < end_pair; ++pair)
    {
        const size_t  channel0 = 2 * pair;
        const int8_t *w0       = _packed8.data() + channel0 * _padded_k;
        const int8_t *w1       = w0 + _padded_k;
        for(size_t p = 0; p < _pixels; p += kDotPixels) // the last block may end in the zero-filled rows
        {
            const int8_t *x0 = rows + p * row_stride, *x1 = x0 + row_stride, *x2 = x1 + row_stride, *x3 = x2 + row_stride;
            const int8_t *wp0 = w0, *wp1 = w1, *const w0_end = w0 + _padded_k;
            int32x4_t     a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            // Pointers that step by 16 (loads with write-back): no address arithmetic in the loop.
            for(; wp0 != w0_end; wp0 += kDotK, wp1 += kDotK, x0 += kDotK, x1 += kDotK, x2 += kDotK, x3 += kDotK)
            {
                const int8x16_t wa = vld1q_s8(wp0), wb = vld1q_s8(wp1);
                const int8x16_t xa = vld1q_s8(x0), xb = vld1q_s8(x1), xc = vld1q_s8(x2), xd = vld1q_s8(x3);
                a0 = int8::dot16(a0, wa, xa);
                a1 = int8::dot16(a1, wa, xb);
                a2 = int8::dot16(a2, wa, xc);
                a3 = int8::dot16(a3, wa, xd);
                b0 = int8::dot16(b0, wb, xa);
                b1 = int8::dot16(b1, wb, xb);
                b2 = int8::dot16(b2, wb, xc);
                b3 = int8::dot16(b3, wb, xd);
            }
            const int32x4_t sums[2] = { int8::lane_sums(a0, a1, a2, a3), int8::lane_sums(b0, b1, b2, b3) };
            const size_t    valid   = std::min(kDotPixels, _pixels - p);
            for(size_t c = 0; c < 2 && channel0 + c < _out_channels; ++c)
            {
                int8::store_requantized(sums[c], vdupq_n_s32(_bias[channel0 + c]), channel_scaling(_stage, channel0 + c), zero, low, high,
                                        out_base + (channel0 + c) * out_stride + p, valid);
            }
        }
    }
}

void QuantizedConvolution::run()
{
    prepare();
    MemoryGroupResourceScope scope(_memory_group);
    _output_direct       = dense(*_output->info());
    const uint8_t *x     = columns();
    const int8_t  *rows  = _dot ? transposed(x) : nullptr;
    const size_t  blocks = _dot ? (_out_channels + 1) / 2 : round_up(_out_channels, kBlockChannels) / kBlockChannels;
    const size_t  split  = std::max<size_t>(1, std::min<size_t>(NEScheduler::get().num_threads(), blocks));
    std::vector<IScheduler::Workload> workloads;
    for(size_t t = 0; t < split; ++t)
    {
        const size_t first = blocks * t / split, end = blocks * (t + 1) / split;
        workloads.emplace_back([this, first, end, x, rows](const ThreadInfo &) {
            if(rows)
            {
                compute_dot(first, end, rows);
            }
            else
            {
                compute_channels(first, end, x);
            }
        });
    }
    NEScheduler::get().run_tagged_workloads(workloads, "QuantizedConvolution");
    if(!_output_direct)
    {
        const size_t width = _output->info()->dimension(0), height = _output->info()->dimension(1);
        for(size_t c = 0; c < _out_channels; ++c)
        {
            const uint8_t *src = _staging.buffer() + c * _staging.info()->strides_in_bytes()[1];
            for(size_t y = 0; y < height; ++y, src += width)
            {
                std::memcpy(_output->buffer() + _output->info()->offset_element_in_bytes(Coordinates(0, y, c)), src, width);
            }
        }
    }
}
} // namespace engine
