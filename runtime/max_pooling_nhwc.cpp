#include "max_pooling_nhwc.h"

#include "arm_compute/core/Error.h"
#include "arm_compute/runtime/NEON/NEScheduler.h"

#include <algorithm>
#include <arm_neon.h>
#include <limits>
#include <vector>

using namespace arm_compute;

namespace engine
{
Status MaxPoolingNhwc::validate(const ITensorInfo *input, const ITensorInfo *output, const PoolingLayerInfo &info)
{
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_type() != DataType::F32 || output->data_type() != DataType::F32, "float32 only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_layout() != DataLayout::NHWC || output->data_layout() != DataLayout::NHWC, "NHWC only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(info.pool_type != PoolingType::MAX || info.is_global_pooling, "max pooling with a window only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->dimension(0) != output->dimension(0), "input and output channels differ");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(info.pool_size.width == 0 || info.pool_size.height == 0, "empty window");
    const auto   stride = info.pad_stride_info.stride();
    const size_t width  = input->dimension(1) + info.pad_stride_info.pad_left() + info.pad_stride_info.pad_right();
    const size_t height = input->dimension(2) + info.pad_stride_info.pad_top() + info.pad_stride_info.pad_bottom();
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(width < info.pool_size.width || height < info.pool_size.height, "window larger than the padded input");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(output->dimension(1) != (width - info.pool_size.width) / stride.first + 1
                                        || output->dimension(2) != (height - info.pool_size.height) / stride.second + 1,
                                    "output size does not match the window, stride and padding (floor rounding)");
    return Status{};
}

void MaxPoolingNhwc::configure(ITensor *input, ITensor *output, const PoolingLayerInfo &info)
{
    ARM_COMPUTE_ERROR_THROW_ON(validate(input->info(), output->info(), info));
    _input      = input;
    _output     = output;
    _pad_stride = info.pad_stride_info;
    _pool       = info.pool_size;
}

void MaxPoolingNhwc::rows(size_t first, size_t end) const
{
    const ITensorInfo &in = *_input->info(), &out = *_output->info();
    const size_t channels = in.dimension(0), in_w = in.dimension(1), in_h = in.dimension(2), out_w = out.dimension(1);
    const size_t in_sx = in.strides_in_bytes()[1], in_sy = in.strides_in_bytes()[2];
    const size_t out_sx = out.strides_in_bytes()[1], out_sy = out.strides_in_bytes()[2];
    const uint8_t *src = _input->buffer() + in.offset_first_element_in_bytes();
    uint8_t       *dst = _output->buffer() + out.offset_first_element_in_bytes();
    const int stride_x = _pad_stride.stride().first, stride_y = _pad_stride.stride().second;
    const int pad_x = _pad_stride.pad_left(), pad_y = _pad_stride.pad_top();
    for(size_t oy = first; oy < end; ++oy)
    {
        const int y0 = std::max(0, static_cast<int>(oy) * stride_y - pad_y);
        const int y1 = std::min(static_cast<int>(in_h), static_cast<int>(oy) * stride_y - pad_y + static_cast<int>(_pool.height));
        for(size_t ox = 0; ox < out_w; ++ox)
        {
            const int x0 = std::max(0, static_cast<int>(ox) * stride_x - pad_x);
            const int x1 = std::min(static_cast<int>(in_w), static_cast<int>(ox) * stride_x - pad_x + static_cast<int>(_pool.width));
            float    *o  = reinterpret_cast<float *>(dst + oy * out_sy + ox * out_sx);
            size_t    c  = 0;
            for(; c + 4 <= channels; c += 4)
            {
                float32x4_t m = vdupq_n_f32(-std::numeric_limits<float>::infinity());
                for(int y = y0; y < y1; ++y)
                {
                    const uint8_t *row = src + y * in_sy + c * sizeof(float);
                    for(int x = x0; x < x1; ++x)
                    {
                        m = vmaxq_f32(m, vld1q_f32(reinterpret_cast<const float *>(row + x * in_sx)));
                    }
                }
                vst1q_f32(o + c, m);
            }
            for(; c < channels; ++c)
            {
                float m = -std::numeric_limits<float>::infinity();
                for(int y = y0; y < y1; ++y)
                {
                    for(int x = x0; x < x1; ++x)
                    {
                        m = std::max(m, reinterpret_cast<const float *>(src + y * in_sy + x * in_sx)[c]);
                    }
                }
                o[c] = m;
            }
        }
    }
}

void MaxPoolingNhwc::run()
{
    const size_t height = _output->info()->dimension(2);
    const size_t split  = std::max<size_t>(1, std::min<size_t>(NEScheduler::get().num_threads(), height));
    std::vector<IScheduler::Workload> workloads;
    for(size_t t = 0; t < split; ++t)
    {
        const size_t first = height * t / split, end = height * (t + 1) / split;
        workloads.emplace_back([this, first, end](const ThreadInfo &) { rows(first, end); });
    }
    NEScheduler::get().run_tagged_workloads(workloads, "MaxPoolingNhwc");
}
} // namespace engine
