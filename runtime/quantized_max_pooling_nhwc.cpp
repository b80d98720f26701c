#include "quantized_max_pooling_nhwc.h"

#include "engine.h"
#include "max_pooling_window.h"

#include "arm_compute/core/Error.h"
#include "arm_compute/core/Helpers.h"

#include <arm_neon.h>

#include <algorithm>

using namespace arm_compute;

namespace engine
{
Status QuantizedMaxPoolingNhwc::validate(const ITensorInfo *input, const ITensorInfo *output, const PoolingLayerInfo &info)
{
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_type() != DataType::QASYMM8 || output->data_type() != DataType::QASYMM8, "QASYMM8 only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->quantization_info() != output->quantization_info(), "input and output must share their quantization");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->strides_in_bytes()[0] != 1 || output->strides_in_bytes()[0] != 1, "a pixel's channels must lie back to back");
    return validate_max_pooling_window(input, output, info);
}

void QuantizedMaxPoolingNhwc::configure(ITensor *input, ITensor *output, const PoolingLayerInfo &info)
{
    ARM_COMPUTE_ERROR_THROW_ON(validate(input->info(), output->info(), info));
    _input      = input;
    _output     = output;
    _pad_stride = info.pad_stride_info;
    _pool       = info.pool_size;
}

void QuantizedMaxPoolingNhwc::rows(size_t first, size_t end) const
{
    const ITensorInfo &in = *_input->info(), &out = *_output->info();
    const size_t       channels = in.dimension(0);
    const int          in_w = static_cast<int>(in.dimension(1)), in_h = static_cast<int>(in.dimension(2));
    const size_t       in_sx = in.strides_in_bytes()[1], in_sy = in.strides_in_bytes()[2];
    const size_t       out_sx = out.strides_in_bytes()[1], out_sy = out.strides_in_bytes()[2];
    const int          sx = static_cast<int>(_pad_stride.stride().first), sy = static_cast<int>(_pad_stride.stride().second);
    const int          left = static_cast<int>(_pad_stride.pad_left()), top = static_cast<int>(_pad_stride.pad_top());
    const uint8_t     *src  = _input->buffer() + in.offset_first_element_in_bytes();
    uint8_t           *dst0 = _output->buffer() + out.offset_first_element_in_bytes();
    for(size_t oy = first; oy < end; ++oy)
    {
        const int y0 = std::max(0, static_cast<int>(oy) * sy - top), y1 = std::min(in_h, static_cast<int>(oy) * sy - top + static_cast<int>(_pool.height));
        for(size_t ox = 0; ox < out.dimension(1); ++ox)
        {
            const int x0 = std::max(0, static_cast<int>(ox) * sx - left), x1 = std::min(in_w, static_cast<int>(ox) * sx - left + static_cast<int>(_pool.width));
            uint8_t  *o  = dst0 + oy * out_sy + ox * out_sx;
            size_t    c  = 0;
            for(; c + 16 <= channels; c += 16)
            {
                uint8x16_t m = vdupq_n_u8(0);
                for(int y = y0; y < y1; ++y)
                {
                    const uint8_t *p = src + y * in_sy + x0 * in_sx + c;
                    for(int x = x0; x < x1; ++x, p += in_sx)
                    {
                        m = vmaxq_u8(m, vld1q_u8(p));
                    }
                }
                vst1q_u8(o + c, m);
            }
            for(; c < channels; ++c)
            {
                uint8_t m = 0;
                for(int y = y0; y < y1; ++y)
                {
                    for(int x = x0; x < x1; ++x)
                    {
                        m = std::max(m, src[y * in_sy + x * in_sx + c]);
                    }
                }
                o[c] = m;
            }
        }
    }
}

void QuantizedMaxPoolingNhwc::run()
{
    split(_output->info()->dimension(2), "QuantizedMaxPoolingNhwc", [this](size_t first, size_t end) { rows(first, end); });
}
} // namespace engine
