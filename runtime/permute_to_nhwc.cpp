#include "permute_to_nhwc.h"

#include "engine.h"

#include "arm_compute/core/Error.h"

#include <arm_neon.h>
#include <cstdint>

using namespace arm_compute;

namespace engine
{
namespace
{
/** An image row's 3 channel planes interleaved into pixels, a register of pixels at a time (4 floats: two vst3 of
 *  2 pixels; 8 codes: one vst3). Returns the first pixel left. */
size_t interleave_rgb(const float *p0, const float *p1, const float *p2, float *q, size_t width)
{
    size_t x = 0;
    for(; x + 4 <= width; x += 4, q += 12)
    {
        const float32x4_t r = vld1q_f32(p0 + x), g = vld1q_f32(p1 + x), b = vld1q_f32(p2 + x);
        vst3_f32(q, float32x2x3_t{ { vget_low_f32(r), vget_low_f32(g), vget_low_f32(b) } });
        vst3_f32(q + 6, float32x2x3_t{ { vget_high_f32(r), vget_high_f32(g), vget_high_f32(b) } });
    }
    return x;
}

size_t interleave_rgb(const uint8_t *p0, const uint8_t *p1, const uint8_t *p2, uint8_t *q, size_t width)
{
    size_t x = 0;
    for(; x + 8 <= width; x += 8, q += 24)
    {
        vst3_u8(q, uint8x8x3_t{ { vld1_u8(p0 + x), vld1_u8(p1 + x), vld1_u8(p2 + x) } });
    }
    return x;
}

/** Any channel count: 4 channels x 4 pixels transposed in registers and stored as 4 pixel vectors, the channels
 *  left one at a time. Returns the first pixel left. (In 8 bits every value goes one at a time, below.) */
size_t transpose_4x4(const uint8_t *row, size_t in_sc, uint8_t *o, size_t out_sx, size_t width, size_t channels, float)
{
    size_t x = 0;
    for(; x + 4 <= width; x += 4)
    {
        size_t c = 0;
        for(; c + 4 <= channels; c += 4)
        {
            const uint8_t    *p = row + c * in_sc + x * sizeof(float);
            const float32x4_t a = vld1q_f32(reinterpret_cast<const float *>(p)), b = vld1q_f32(reinterpret_cast<const float *>(p + in_sc));
            const float32x4_t cc = vld1q_f32(reinterpret_cast<const float *>(p + 2 * in_sc)), d = vld1q_f32(reinterpret_cast<const float *>(p + 3 * in_sc));
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
    return x;
}

size_t transpose_4x4(const uint8_t *, size_t, uint8_t *, size_t, size_t, size_t, uint8_t)
{
    return 0;
}

/** Image rows [first, end) of an NCHW tensor of T into an NHWC one. */
template <typename T>
void permute_rows(const ITensor &input, ITensor &output, size_t first, size_t end)
{
    const ITensorInfo &in = *input.info(), &out = *output.info();
    const size_t       width = in.dimension(0), channels = in.dimension(2);
    const size_t       in_sy = in.strides_in_bytes()[1], in_sc = in.strides_in_bytes()[2];
    const size_t       out_sx = out.strides_in_bytes()[1], out_sy = out.strides_in_bytes()[2];
    const uint8_t     *src = input.buffer() + in.offset_first_element_in_bytes();
    uint8_t           *dst = output.buffer() + out.offset_first_element_in_bytes();
    const bool         rgb = channels == 3 && out_sx == 3 * sizeof(T);
    for(size_t y = first; y < end; ++y)
    {
        const uint8_t *row = src + y * in_sy;
        uint8_t       *o   = dst + y * out_sy;
        const size_t   x0  = rgb ? interleave_rgb(reinterpret_cast<const T *>(row), reinterpret_cast<const T *>(row + in_sc),
                                                  reinterpret_cast<const T *>(row + 2 * in_sc), reinterpret_cast<T *>(o), width)
                                 : transpose_4x4(row, in_sc, o, out_sx, width, channels, T{});
        for(size_t x = x0; x < width; ++x) // the pixels left
        {
            for(size_t c = 0; c < channels; ++c)
            {
                reinterpret_cast<T *>(o + x * out_sx)[c] = reinterpret_cast<const T *>(row + c * in_sc)[x];
            }
        }
    }
}
} // namespace

Status PermuteToNhwc::validate(const ITensorInfo *input, const ITensorInfo *output, const PermutationVector &perm)
{
    ARM_COMPUTE_RETURN_ERROR_ON_NULLPTR(input, output);
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_type() != output->data_type(), "input and output types differ");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_type() != DataType::F32 && input->data_type() != DataType::QASYMM8, "float32 or QASYMM8 only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->quantization_info() != output->quantization_info(), "input and output must share their quantization");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_layout() != DataLayout::NCHW || output->data_layout() != DataLayout::NHWC, "NCHW to NHWC only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(perm.num_dimensions() != 3 || perm[0] != 2 || perm[1] != 0 || perm[2] != 1, "the permutation (2, 0, 1) only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->num_dimensions() > 3 || output->num_dimensions() > 3, "one image at a time");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(output->dimension(0) != input->dimension(2) || output->dimension(1) != input->dimension(0) || output->dimension(2) != input->dimension(1),
                                    "output must be the input's C x W x H");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->strides_in_bytes()[0] != input->element_size() || output->strides_in_bytes()[0] != output->element_size(),
                                    "values must be back to back along the fastest dimension");
    return Status{};
}

void PermuteToNhwc::configure(ITensor *input, ITensor *output, const PermutationVector &perm)
{
    ARM_COMPUTE_ERROR_THROW_ON(validate(input->info(), output->info(), perm));
    ARM_COMPUTE_UNUSED(perm);
    _input  = input;
    _output = output;
}

void PermuteToNhwc::run()
{
    const bool floats = _input->info()->data_type() == DataType::F32;
    split(_input->info()->dimension(1), "PermuteToNhwc", [this, floats](size_t first, size_t end) {
        floats ? permute_rows<float>(*_input, *_output, first, end) : permute_rows<uint8_t>(*_input, *_output, first, end);
    });
}
} // namespace engine
