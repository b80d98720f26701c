#include "global_average_pooling_nhwc.h"

#include "arm_compute/core/Error.h"
#include "arm_compute/runtime/NEON/NEScheduler.h"

#include <algorithm>
#include <arm_neon.h>
#include <vector>

using namespace arm_compute;

namespace engine
{
namespace
{
constexpr size_t kBlock = 16; // channels per accumulator set
} // namespace

Status GlobalAveragePoolingNhwc::validate(const ITensorInfo *input, const ITensorInfo *output, const PoolingLayerInfo &info)
{
    ARM_COMPUTE_RETURN_ERROR_ON_NULLPTR(input, output);
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_type() != DataType::F32 || output->data_type() != DataType::F32, "float32 only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_layout() != DataLayout::NHWC || output->data_layout() != DataLayout::NHWC, "NHWC only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(!info.is_global_pooling || info.pool_type != PoolingType::AVG, "global average pooling only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->num_dimensions() > 3 || output->num_dimensions() > 3, "one image at a time");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->dimension(1) * input->dimension(2) == 0, "empty input");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(output->dimension(0) != input->dimension(0) || output->dimension(1) != 1 || output->dimension(2) != 1,
                                    "output must be channels x 1 x 1");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->strides_in_bytes()[1] % sizeof(float) != 0 || input->strides_in_bytes()[2] % sizeof(float) != 0,
                                    "pixel strides must be whole floats");
    return Status{};
}

void GlobalAveragePoolingNhwc::configure(ITensor *input, ITensor *output, const PoolingLayerInfo &info)
{
    ARM_COMPUTE_ERROR_THROW_ON(validate(input->info(), output->info(), info));
    ARM_COMPUTE_UNUSED(info);
    _input  = input;
    _output = output;
}

void GlobalAveragePoolingNhwc::channels(size_t first, size_t end) const
{
    const ITensorInfo &in    = *_input->info();
    const size_t       width = in.dimension(1), height = in.dimension(2);
    const size_t       sx = in.strides_in_bytes()[1] / sizeof(float), sy = in.strides_in_bytes()[2] / sizeof(float);
    const float       *src   = reinterpret_cast<const float *>(_input->buffer() + in.offset_first_element_in_bytes());
    float             *dst   = reinterpret_cast<float *>(_output->buffer() + _output->info()->offset_first_element_in_bytes());
    const float        scale = 1.f / static_cast<float>(width * height);
    // Rows of pixels back to back: the plane is one run of pixels.
    const bool   dense  = sy == width * sx;
    const size_t runs   = dense ? 1 : height;
    const size_t pixels = dense ? width * height : width;
    size_t       c      = first;
    for(; c + kBlock <= end; c += kBlock)
    {
        float32x4_t a0 = vdupq_n_f32(0.f), a1 = a0, a2 = a0, a3 = a0;
        for(size_t y = 0; y < runs; ++y)
        {
            const float *p = src + y * sy + c;
            for(size_t x = 0; x < pixels; ++x, p += sx)
            {
                a0 = vaddq_f32(a0, vld1q_f32(p));
                a1 = vaddq_f32(a1, vld1q_f32(p + 4));
                a2 = vaddq_f32(a2, vld1q_f32(p + 8));
                a3 = vaddq_f32(a3, vld1q_f32(p + 12));
            }
        }
        vst1q_f32(dst + c, vmulq_n_f32(a0, scale));
        vst1q_f32(dst + c + 4, vmulq_n_f32(a1, scale));
        vst1q_f32(dst + c + 8, vmulq_n_f32(a2, scale));
        vst1q_f32(dst + c + 12, vmulq_n_f32(a3, scale));
    }
    for(; c + 4 <= end; c += 4)
    {
        float32x4_t a = vdupq_n_f32(0.f);
        for(size_t y = 0; y < runs; ++y)
        {
            const float *p = src + y * sy + c;
            for(size_t x = 0; x < pixels; ++x, p += sx)
            {
                a = vaddq_f32(a, vld1q_f32(p));
            }
        }
        vst1q_f32(dst + c, vmulq_n_f32(a, scale));
    }
    for(; c < end; ++c)
    {
        float sum = 0.f;
        for(size_t y = 0; y < runs; ++y)
        {
            const float *p = src + y * sy + c;
            for(size_t x = 0; x < pixels; ++x, p += sx)
            {
                sum += *p;
            }
        }
        dst[c] = sum * scale;
    }
}

void GlobalAveragePoolingNhwc::run()
{
    const size_t total  = _input->info()->dimension(0);
    const size_t blocks = (total + kBlock - 1) / kBlock;
    const size_t split  = std::max<size_t>(1, std::min<size_t>(NEScheduler::get().num_threads(), blocks));
    std::vector<IScheduler::Workload> workloads;
    for(size_t t = 0; t < split; ++t)
    {
        // Whole blocks of 16 channels per thread; the last one takes the tail.
        const size_t first = blocks * t / split * kBlock, end = std::min(total, blocks * (t + 1) / split * kBlock);
        workloads.emplace_back([this, first, end](const ThreadInfo &) { channels(first, end); });
    }
    NEScheduler::get().run_tagged_workloads(workloads, "GlobalAveragePoolingNhwc");
}
} // namespace engine
