#include "quantized_global_average_pooling.h"

#include "int8_dot.h"
#include "quantized_convolution.h"

#include "arm_compute/core/Error.h"

#include <arm_neon.h>

#include <algorithm>

using namespace arm_compute;

namespace engine
{
Status QuantizedGlobalAveragePooling::validate(const ITensorInfo *input, const ITensorInfo *output, const PoolingLayerInfo &info)
{
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_type() != DataType::QASYMM8 || output->data_type() != DataType::QASYMM8, "QASYMM8 only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(!info.is_global_pooling || info.pool_type != PoolingType::AVG, "global average pooling only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_layout() != output->data_layout(), "input and output must have the same layout");
    const bool nhwc = input->data_layout() == DataLayout::NHWC;
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(nhwc ? (output->dimension(1) != 1 || output->dimension(2) != 1 || output->dimension(0) != input->dimension(0) || input->strides_in_bytes()[0] != 1)
                                         : (output->dimension(0) != 1 || output->dimension(1) != 1 || output->dimension(2) != input->dimension(2)),
                                    "output must be 1 x 1 x channels");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(!nhwc && input->dimension(0) * input->dimension(1) > 257 * 16, "plane too large for 16-bit partial sums");
    return Status{};
}

void QuantizedGlobalAveragePooling::configure(ITensor *input, ITensor *output, const PoolingLayerInfo &info)
{
    ARM_COMPUTE_ERROR_THROW_ON(validate(input->info(), output->info(), info));
    ARM_COMPUTE_UNUSED(info); // used by the check above, which release builds of ACL compile out
    _input  = input;
    _output = output;
    const UniformQuantizationInfo in = input->info()->quantization_info().uniform(), out = output->info()->quantization_info().uniform();
    _requantize    = !(input->info()->quantization_info() == output->info()->quantization_info());
    _input_offset  = in.offset;
    _output_offset = out.offset;
    const bool    nhwc  = input->info()->data_layout() == DataLayout::NHWC;
    const int64_t count = static_cast<int64_t>(nhwc ? input->info()->dimension(1) * input->info()->dimension(2) : input->info()->dimension(0) * input->info()->dimension(1));
    int           exponent = 0;
    quantize_multiplier(static_cast<double>(in.scale) / static_cast<double>(out.scale), _multiplier, exponent);
    int log2_count = 0;
    while((int64_t(2) << log2_count) <= count)
    {
        ++log2_count;
    }
    const int shift = std::min(std::min(log2_count, 32), 31 + exponent);
    _multiplier     = static_cast<int32_t>((static_cast<int64_t>(_multiplier) << shift) / count);
    _left           = std::max(exponent - shift, 0);
    _right          = std::min(exponent - shift, 0);
}

uint8_t QuantizedGlobalAveragePooling::average(uint32_t sum, uint32_t count) const
{
    if(!_requantize)
    {
        return static_cast<uint8_t>((sum + count / 2) / count); // rounded to nearest
    }
    const int32_t       centred = static_cast<int32_t>(sum) - _input_offset * static_cast<int32_t>(count);
    const int8::Scaling s       = { vdupq_n_s32(_multiplier), vdupq_n_s32(_left), vdupq_n_s32(_right) };
    const int32_t       y       = vgetq_lane_s32(int8::scaled(vdupq_n_s32(centred), s), 0) + _output_offset;
    return static_cast<uint8_t>(std::min(255, std::max(0, y)));
}

namespace
{
/** Sum of n bytes: 16 at a time into 8 16-bit lanes (n <= 257 x 16 keeps them below 65536), then the rest. */
uint32_t sum_bytes(const uint8_t *bytes, size_t n)
{
    size_t     x   = 0;
    uint16x8_t acc = vdupq_n_u16(0);
    for(; x + 16 <= n; x += 16)
    {
        acc = vpadalq_u8(acc, vld1q_u8(bytes + x));
    }
    const uint64x2_t total = vpaddlq_u32(vpaddlq_u16(acc));
    uint32_t         sum   = static_cast<uint32_t>(vgetq_lane_u64(total, 0) + vgetq_lane_u64(total, 1));
    for(; x < n; ++x)
    {
        sum += bytes[x];
    }
    return sum;
}
} // namespace

void QuantizedGlobalAveragePooling::run_nhwc()
{
    // NHWC: a pixel's channels are contiguous; 16 channels at a time, summed along each row in 16-bit lanes (at most
    // 257 pixels per partial sum: 257 x 255 < 65536), each row's partial sums widened into 32 bits. With 16 channels
    // or more, the last block overlaps the one before it (its channels' sums come out the same twice); fewer go one
    // channel at a time.
    const ITensorInfo &info     = *_input->info();
    const size_t       channels = info.dimension(0), width = info.dimension(1), height = info.dimension(2);
    const size_t       sx = info.strides_in_bytes()[1], sy = info.strides_in_bytes()[2];
    const uint32_t     count = static_cast<uint32_t>(width * height);
    const uint8_t     *base  = _input->buffer() + info.offset_first_element_in_bytes();
    uint8_t           *out   = _output->buffer() + _output->info()->offset_first_element_in_bytes();
    for(size_t block = 0; channels >= 16 && block < channels; block += 16)
    {
        const size_t c   = std::min(block, channels - 16);
        uint32x4_t   sum[4] = { vdupq_n_u32(0), vdupq_n_u32(0), vdupq_n_u32(0), vdupq_n_u32(0) };
        for(size_t y = 0; y < height; ++y)
        {
            for(size_t x0 = 0; x0 < width; x0 += 257)
            {
                const uint8_t *p  = base + y * sy + x0 * sx + c;
                uint16x8_t     lo = vdupq_n_u16(0), hi = lo;
                for(size_t n = std::min<size_t>(257, width - x0); n > 0; --n, p += sx)
                {
                    const uint8x16_t v = vld1q_u8(p);
                    lo = vaddw_u8(lo, vget_low_u8(v)), hi = vaddw_u8(hi, vget_high_u8(v));
                }
                sum[0] = vaddw_u16(sum[0], vget_low_u16(lo)), sum[1] = vaddw_u16(sum[1], vget_high_u16(lo));
                sum[2] = vaddw_u16(sum[2], vget_low_u16(hi)), sum[3] = vaddw_u16(sum[3], vget_high_u16(hi));
            }
        }
        uint32_t sums[16];
        for(size_t i = 0; i < 4; ++i)
        {
            vst1q_u32(sums + 4 * i, sum[i]);
        }
        for(size_t i = 0; i < 16; ++i)
        {
            out[c + i] = average(sums[i], count);
        }
    }
    for(size_t c = 0; channels < 16 && c < channels; ++c)
    {
        uint32_t sum = 0;
        for(size_t y = 0; y < height; ++y)
        {
            for(size_t x = 0; x < width; ++x)
            {
                sum += base[y * sy + x * sx + c];
            }
        }
        out[c] = average(sum, count);
    }
}

void QuantizedGlobalAveragePooling::run()
{
    if(_input->info()->data_layout() == DataLayout::NHWC)
    {
        run_nhwc();
        return;
    }
    const ITensorInfo &info    = *_input->info();
    const size_t       width   = info.dimension(0);
    const size_t       height  = info.dimension(1);
    const Strides     &strides = info.strides_in_bytes();
    const uint32_t     count   = static_cast<uint32_t>(width * height);
    const bool         dense   = strides[1] == width; // rows back to back: the plane is one run of bytes
    const uint8_t     *plane   = _input->buffer() + info.offset_first_element_in_bytes();
    uint8_t           *out     = _output->buffer() + _output->info()->offset_first_element_in_bytes();
    const size_t       out_step = _output->info()->strides_in_bytes()[2];
    for(size_t c = 0; c < info.dimension(2); ++c, plane += strides[2], out += out_step)
    {
        uint32_t sum = 0;
        if(dense)
        {
            sum = sum_bytes(plane, count);
        }
        else
        {
            for(size_t y = 0; y < height; ++y)
            {
                sum += sum_bytes(plane + y * strides[1], width);
            }
        }
        *out = average(sum, count);
    }
}
} // namespace engine
