#include "max_pooling_nhwc.h"

#include "engine.h"
#include "max_pooling_window.h"

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
    return validate_max_pooling_window(input, output, info);
}

void MaxPoolingNhwc::configure(ITensor *input, ITensor *output, const PoolingLayerInfo &info)
{
    ARM_COMPUTE_ERROR_THROW_ON(validate(input->info(), output->info(), info));
    _input      = input;
    _output     = output;
    _pad_stride = info.pad_stride_info;
    _pool       = info.pool_size;
}

namespace
{
/** The maximum of one window (clipped to the input) for channels [c, channels), any window and stride. */
void window_max(const uint8_t *src, size_t in_sx, size_t in_sy, int x0, int x1, int y0, int y1, size_t c, size_t channels, float *o)
{
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

/** A 3x3 stride-2 window along a run of `count` outputs whose windows lie inside the input: r0 points at the first
 *  window's top-left pixel, channel 0. Channels go 8 (then 4) at a time along the row; the maximum of each input
 *  column over the 3 rows is computed once and the window's last column carried to the next window, so 8 outputs
 *  cost 6 loads, 12 maximums and a store (21 instructions with the loop's). Returns the first channel left (fewer
 *  than 4). */
size_t row_3x3s2(const uint8_t *r0, size_t in_sx, size_t in_sy, uint8_t *o0, size_t out_sx, size_t count, size_t channels)
{
    size_t c = 0;
#if !defined(__aarch64__) // armv7 inline assembly; AArch64 takes every channel through the intrinsics loop below
    for(; c + 8 <= channels; c += 8)
    {
        const float *p0 = reinterpret_cast<const float *>(r0 + c * sizeof(float));
        const float *p1 = reinterpret_cast<const float *>(r0 + in_sy + c * sizeof(float));
        const float *p2 = reinterpret_cast<const float *>(r0 + 2 * in_sy + c * sizeof(float));
        float       *o  = reinterpret_cast<float *>(o0 + c * sizeof(float));
        size_t       n  = count;
        // The previous window's last column (its 3-row maximum) is carried in q8-q9.
        asm volatile(
            "vld1.32 {d16-d19}, [%[p0]], %[step]\n"
            "vld1.32 {d0-d3}, [%[p1]], %[step]\n"
            "vld1.32 {d4-d7}, [%[p2]], %[step]\n"
            "vmax.f32 q8, q8, q0\n"
            "vmax.f32 q9, q9, q1\n"
            "vmax.f32 q8, q8, q2\n"
            "vmax.f32 q9, q9, q3\n"
            "1:\n"
            "vld1.32 {d0-d3}, [%[p0]], %[step]\n"   // column a
            "vld1.32 {d4-d7}, [%[p1]], %[step]\n"
            "vld1.32 {d8-d11}, [%[p2]], %[step]\n"
            "vmax.f32 q0, q0, q2\n"
            "vmax.f32 q1, q1, q3\n"
            "vmax.f32 q0, q0, q4\n"
            "vmax.f32 q1, q1, q5\n"
            "vmax.f32 q0, q0, q8\n"                 // max(previous, a)
            "vmax.f32 q1, q1, q9\n"
            "vld1.32 {d4-d7}, [%[p0]], %[step]\n"   // column b, the next window's first
            "vld1.32 {d8-d11}, [%[p1]], %[step]\n"
            "vld1.32 {d12-d15}, [%[p2]], %[step]\n"
            "vmax.f32 q2, q2, q4\n"
            "vmax.f32 q3, q3, q5\n"
            "vmax.f32 q8, q2, q6\n"
            "vmax.f32 q9, q3, q7\n"
            "vmax.f32 q0, q0, q8\n"
            "vmax.f32 q1, q1, q9\n"
            "vst1.32 {d0-d3}, [%[o]], %[out_step]\n"
            "subs %[n], %[n], #1\n"
            "bne 1b\n"
            : [p0] "+r"(p0), [p1] "+r"(p1), [p2] "+r"(p2), [o] "+r"(o), [n] "+r"(n)
            : [step] "r"(in_sx), [out_step] "r"(out_sx)
            : "cc", "memory", "q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q9");
    }
#endif
    for(; c + 4 <= channels; c += 4)
    {
        const float *p0 = reinterpret_cast<const float *>(r0 + c * sizeof(float));
        const float *p1 = reinterpret_cast<const float *>(r0 + in_sy + c * sizeof(float));
        const float *p2 = reinterpret_cast<const float *>(r0 + 2 * in_sy + c * sizeof(float));
        float       *o  = reinterpret_cast<float *>(o0 + c * sizeof(float));
        const size_t step = in_sx / sizeof(float), out_step = out_sx / sizeof(float);
        float32x4_t  prev = vmaxq_f32(vmaxq_f32(vld1q_f32(p0), vld1q_f32(p1)), vld1q_f32(p2));
        p0 += step, p1 += step, p2 += step;
        for(size_t n = 0; n < count; ++n)
        {
            const float32x4_t a = vmaxq_f32(vmaxq_f32(vld1q_f32(p0), vld1q_f32(p1)), vld1q_f32(p2));
            p0 += step, p1 += step, p2 += step;
            const float32x4_t b = vmaxq_f32(vmaxq_f32(vld1q_f32(p0), vld1q_f32(p1)), vld1q_f32(p2));
            p0 += step, p1 += step, p2 += step;
            vst1q_f32(o, vmaxq_f32(vmaxq_f32(prev, a), b));
            o += out_step;
            prev = b;
        }
    }
    return c;
}
} // namespace

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
    const int kw = static_cast<int>(_pool.width), kh = static_cast<int>(_pool.height);
    // 3x3 stride 2 with whole-float strides: the outputs [inner_first, inner_end) of a row whose window rows are all
    // inside the input take the fast path; the others (clipped windows) the general one.
    const bool three_by_two = kw == 3 && kh == 3 && stride_x == 2 && stride_y == 2 && in_sx % sizeof(float) == 0 && out_sx % sizeof(float) == 0;
    size_t     inner_first = 0, inner_end = 0;
    if(three_by_two)
    {
        inner_first = static_cast<size_t>((pad_x + 1) / 2); // first ox with ox * 2 - pad_x >= 0
        const int last = (static_cast<int>(in_w) - 3 + pad_x); // ox * 2 - pad_x + 3 <= in_w
        inner_end = last < 0 ? 0 : std::min(out_w, static_cast<size_t>(last / 2 + 1));
        inner_end = std::max(inner_end, inner_first);
    }
    for(size_t oy = first; oy < end; ++oy)
    {
        const int wy = static_cast<int>(oy) * stride_y - pad_y;
        const int y0 = std::max(0, wy), y1 = std::min(static_cast<int>(in_h), wy + kh);
        uint8_t  *out_row = dst + oy * out_sy;
        size_t    ox      = 0;
        if(three_by_two && wy >= 0 && wy + 3 <= static_cast<int>(in_h) && inner_end > inner_first)
        {
            const int wx = static_cast<int>(inner_first) * 2 - pad_x;
            const size_t c = row_3x3s2(src + wy * in_sy + wx * in_sx, in_sx, in_sy, out_row + inner_first * out_sx, out_sx, inner_end - inner_first, channels);
            for(size_t x = inner_first; c < channels && x < inner_end; ++x) // channels left: fewer than 4
            {
                const int wxx = static_cast<int>(x) * 2 - pad_x;
                window_max(src, in_sx, in_sy, wxx, wxx + 3, wy, wy + 3, c, channels, reinterpret_cast<float *>(out_row + x * out_sx));
            }
            for(; ox < inner_first; ++ox)
            {
                const int wxx = static_cast<int>(ox) * stride_x - pad_x;
                window_max(src, in_sx, in_sy, std::max(0, wxx), std::min(static_cast<int>(in_w), wxx + kw), y0, y1, 0, channels,
                           reinterpret_cast<float *>(out_row + ox * out_sx));
            }
            ox = inner_end;
        }
        for(; ox < out_w; ++ox)
        {
            const int wx = static_cast<int>(ox) * stride_x - pad_x;
            window_max(src, in_sx, in_sy, std::max(0, wx), std::min(static_cast<int>(in_w), wx + kw), y0, y1, 0, channels,
                       reinterpret_cast<float *>(out_row + ox * out_sx));
        }
    }
}

void MaxPoolingNhwc::run()
{
    split(_output->info()->dimension(2), "MaxPoolingNhwc", [this](size_t first, size_t end) { rows(first, end); });
}
} // namespace engine
