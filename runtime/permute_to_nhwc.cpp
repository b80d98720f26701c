#include "permute_to_nhwc.h"

#include "engine.h"

#include "arm_compute/core/Error.h"
#include "arm_compute/runtime/NEON/NEScheduler.h"

#include <algorithm>
#include <arm_neon.h>
#include <vector>

using namespace arm_compute;

namespace engine
{
Status PermuteToNhwc::validate(const ITensorInfo *input, const ITensorInfo *output, const PermutationVector &perm)
{
    ARM_COMPUTE_RETURN_ERROR_ON_NULLPTR(input, output);
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_type() != DataType::F32 || output->data_type() != DataType::F32, "float32 only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_layout() != DataLayout::NCHW || output->data_layout() != DataLayout::NHWC, "NCHW to NHWC only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(perm.num_dimensions() != 3 || perm[0] != 2 || perm[1] != 0 || perm[2] != 1, "the permutation (2, 0, 1) only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->num_dimensions() > 3 || output->num_dimensions() > 3, "one image at a time");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(output->dimension(0) != input->dimension(2) || output->dimension(1) != input->dimension(0) || output->dimension(2) != input->dimension(1),
                                    "output must be the input's C x W x H");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->strides_in_bytes()[0] != sizeof(float) || output->strides_in_bytes()[0] != sizeof(float), "values must be back to back along the fastest dimension");
    return Status{};
}

void PermuteToNhwc::configure(ITensor *input, ITensor *output, const PermutationVector &perm)
{
    ARM_COMPUTE_ERROR_THROW_ON(validate(input->info(), output->info(), perm));
    ARM_COMPUTE_UNUSED(perm);
    _input  = input;
    _output = output;
}

void PermuteToNhwc::rows(size_t first, size_t end) const
{
    const ITensorInfo &in = *_input->info(), &out = *_output->info();
    const size_t       width = in.dimension(0), channels = in.dimension(2);
    const size_t       in_sy = in.strides_in_bytes()[1], in_sc = in.strides_in_bytes()[2];
    const size_t       out_sx = out.strides_in_bytes()[1], out_sy = out.strides_in_bytes()[2];
    const uint8_t     *src = _input->buffer() + in.offset_first_element_in_bytes();
    uint8_t           *dst = _output->buffer() + out.offset_first_element_in_bytes();
    const bool         rgb = channels == 3 && out_sx == 3 * sizeof(float);
    for(size_t y = first; y < end; ++y)
    {
        const uint8_t *row = src + y * in_sy;
        uint8_t       *o   = dst + y * out_sy;
        size_t         x   = 0;
        if(rgb)
        {
            const float *p0 = reinterpret_cast<const float *>(row), *p1 = reinterpret_cast<const float *>(row + in_sc);
            const float *p2 = reinterpret_cast<const float *>(row + 2 * in_sc);
            float       *q  = reinterpret_cast<float *>(o);
            for(; x + 4 <= width; x += 4, q += 12)
            {
                float32x4x3_t v;
                v.val[0] = vld1q_f32(p0 + x);
                v.val[1] = vld1q_f32(p1 + x);
                v.val[2] = vld1q_f32(p2 + x);
                vst3_f32(q, float32x2x3_t{ { vget_low_f32(v.val[0]), vget_low_f32(v.val[1]), vget_low_f32(v.val[2]) } });
                vst3_f32(q + 6, float32x2x3_t{ { vget_high_f32(v.val[0]), vget_high_f32(v.val[1]), vget_high_f32(v.val[2]) } });
            }
        }
        else
        {
            for(; x + 4 <= width; x += 4)
            {
                size_t c = 0;
                for(; c + 4 <= channels; c += 4)
                {
                    const float *p = reinterpret_cast<const float *>(row + c * in_sc) + x;
                    const float32x4_t a = vld1q_f32(p), b = vld1q_f32(reinterpret_cast<const float *>(reinterpret_cast<const uint8_t *>(p) + in_sc));
                    const float32x4_t cc = vld1q_f32(reinterpret_cast<const float *>(reinterpret_cast<const uint8_t *>(p) + 2 * in_sc));
                    const float32x4_t d  = vld1q_f32(reinterpret_cast<const float *>(reinterpret_cast<const uint8_t *>(p) + 3 * in_sc));
                    // 4 x 4 transpose: rows a, b, cc, d (channels) -> columns (pixels).
                    const float32x4x2_t ab = vtrnq_f32(a, b), cd = vtrnq_f32(cc, d);
                    uint8_t *q = o + x * out_sx + c * sizeof(float);
                    vst1q_f32(reinterpret_cast<float *>(q), vcombine_f32(vget_low_f32(ab.val[0]), vget_low_f32(cd.val[0])));
                    vst1q_f32(reinterpret_cast<float *>(q + out_sx), vcombine_f32(vget_low_f32(ab.val[1]), vget_low_f32(cd.val[1])));
                    vst1q_f32(reinterpret_cast<float *>(q + 2 * out_sx), vcombine_f32(vget_high_f32(ab.val[0]), vget_high_f32(cd.val[0])));
                    vst1q_f32(reinterpret_cast<float *>(q + 3 * out_sx), vcombine_f32(vget_high_f32(ab.val[1]), vget_high_f32(cd.val[1])));
                }
                for(; c < channels; ++c)
                {
                    const float *p = reinterpret_cast<const float *>(row + c * in_sc) + x;
                    for(size_t i = 0; i < 4; ++i)
                    {
                        reinterpret_cast<float *>(o + (x + i) * out_sx)[c] = p[i];
                    }
                }
            }
        }
        for(; x < width; ++x) // the last pixels (fewer than 4)
        {
            for(size_t c = 0; c < channels; ++c)
            {
                reinterpret_cast<float *>(o + x * out_sx)[c] = reinterpret_cast<const float *>(row + c * in_sc)[x];
            }
        }
    }
}

void PermuteToNhwc::run()
{
    split(_input->info()->dimension(1), "PermuteToNhwc", [this](size_t first, size_t end) { rows(first, end); });
}
} // namespace engine
