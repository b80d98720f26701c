// What our NHWC max pooling kernels (float32: engine::MaxPoolingNhwc, QASYMM8: engine::QuantizedMaxPoolingNhwc)
// share, whatever the element type (in 8 bits, input and output share one quantization, so the maximum of the codes
// is the code of the maximum):
// - what they require of a window: NHWC on both sides, a max pooling window (not global), as many output channels
//   as input channels, and an output size that follows the window, stride and padding with floor rounding (Caffe's
//   rounded-up windows arrive as padding);
// - the output rows themselves. Padding never wins a maximum and windows are clipped to the input. The 3x3 stride-2
//   windows that lie inside the input (all of SqueezeNet's) take a separable path: along a row of outputs, 32 bytes
//   of channels at a time (8 floats or 32 codes), each input column's maximum over the window's 3 rows is computed
//   once and the window's last column is carried to the next window (stride 2), so one output costs 6 loads, 12
//   maximums and a store (armv7 inline assembly; then one register of channels at a time). Other windows, and the
//   clipped ones, take the general path: per window cell, a load and a maximum per register of channels.
#pragma once

#include "arm_compute/core/Error.h"
#include "arm_compute/core/ITensor.h"
#include "arm_compute/core/ITensorInfo.h"
#include "arm_compute/core/Types.h"

#include <algorithm>
#include <arm_neon.h>
#include <cstdint>
#include <limits>

namespace engine
{
inline arm_compute::Status validate_max_pooling_window(const arm_compute::ITensorInfo *input, const arm_compute::ITensorInfo *output,
                                                       const arm_compute::PoolingLayerInfo &info)
{
    using arm_compute::DataLayout;
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_layout() != DataLayout::NHWC || output->data_layout() != DataLayout::NHWC, "NHWC only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(info.pool_type != arm_compute::PoolingType::MAX || info.is_global_pooling, "max pooling with a window only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->dimension(0) != output->dimension(0), "input and output channels differ");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(info.pool_size.width == 0 || info.pool_size.height == 0, "empty window");
    const auto   stride = info.pad_stride_info.stride();
    const size_t width  = input->dimension(1) + info.pad_stride_info.pad_left() + info.pad_stride_info.pad_right();
    const size_t height = input->dimension(2) + info.pad_stride_info.pad_top() + info.pad_stride_info.pad_bottom();
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(width < info.pool_size.width || height < info.pool_size.height, "window larger than the padded input");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(output->dimension(1) != (width - info.pool_size.width) / stride.first + 1
                                        || output->dimension(2) != (height - info.pool_size.height) / stride.second + 1,
                                    "output size does not match the window, stride and padding (floor rounding)");
    return arm_compute::Status{};
}

namespace max_pooling
{
/** One NEON register of elements of type T, and the maximum over them. Addresses are in bytes. */
template <typename T>
struct Lanes;

template <>
struct Lanes<float>
{
    using Vector                        = float32x4_t;
    static constexpr size_t count       = 4;
    static constexpr float  lowest      = -std::numeric_limits<float>::infinity();
    static Vector load(const uint8_t *p) { return vld1q_f32(reinterpret_cast<const float *>(p)); }
    static void   store(uint8_t *p, Vector v) { vst1q_f32(reinterpret_cast<float *>(p), v); }
    static Vector max(Vector a, Vector b) { return vmaxq_f32(a, b); }
    static Vector lowest_vector() { return vdupq_n_f32(lowest); }
};

template <>
struct Lanes<uint8_t>
{
    using Vector                        = uint8x16_t;
    static constexpr size_t  count      = 16;
    static constexpr uint8_t lowest     = 0;
    static Vector load(const uint8_t *p) { return vld1q_u8(p); }
    static void   store(uint8_t *p, Vector v) { vst1q_u8(p, v); }
    static Vector max(Vector a, Vector b) { return vmaxq_u8(a, b); }
    static Vector lowest_vector() { return vdupq_n_u8(lowest); }
};

/** The maximum of one window (clipped to the input: rows [y0, y1), columns [x0, x1)) for channels [c, channels). */
template <typename T>
void window_max(const uint8_t *src, size_t in_sx, size_t in_sy, int x0, int x1, int y0, int y1, size_t c, size_t channels, uint8_t *o)
{
    using L = Lanes<T>;
    for(; c + L::count <= channels; c += L::count)
    {
        typename L::Vector m = L::lowest_vector();
        for(int y = y0; y < y1; ++y)
        {
            for(int x = x0; x < x1; ++x)
            {
                m = L::max(m, L::load(src + y * in_sy + x * in_sx + c * sizeof(T)));
            }
        }
        L::store(o + c * sizeof(T), m);
    }
    for(; c < channels; ++c)
    {
        T m = L::lowest;
        for(int y = y0; y < y1; ++y)
        {
            for(int x = x0; x < x1; ++x)
            {
                m = std::max(m, *reinterpret_cast<const T *>(src + y * in_sy + x * in_sx + c * sizeof(T)));
            }
        }
        reinterpret_cast<T *>(o)[c] = m;
    }
}

#if !defined(__aarch64__)
// The separable 3x3 stride-2 run for 32 bytes of channels: `n` outputs from the window rows p0-p2, the previous
// window's last column (its 3-row maximum) carried in q8-q9. LOAD, STORE and MAX name the element type's instructions.
#define ENGINE_MAX_POOLING_3X3S2_RUN(LOAD, STORE, MAX)                                                            \
    asm volatile(LOAD " {d16-d19}, [%[p0]], %[step]\n" LOAD " {d0-d3}, [%[p1]], %[step]\n"                   \
                 LOAD " {d4-d7}, [%[p2]], %[step]\n" MAX " q8, q8, q0\n" MAX " q9, q9, q1\n"                 \
                 MAX " q8, q8, q2\n" MAX " q9, q9, q3\n"                                                     \
                 "1:\n" LOAD " {d0-d3}, [%[p0]], %[step]\n" /* column a */                                   \
                 LOAD " {d4-d7}, [%[p1]], %[step]\n" LOAD " {d8-d11}, [%[p2]], %[step]\n"                    \
                 MAX " q0, q0, q2\n" MAX " q1, q1, q3\n" MAX " q0, q0, q4\n" MAX " q1, q1, q5\n"             \
                 MAX " q0, q0, q8\n" MAX " q1, q1, q9\n" /* max(previous, a) */                              \
                 LOAD " {d4-d7}, [%[p0]], %[step]\n" /* column b, the next window's first */                 \
                 LOAD " {d8-d11}, [%[p1]], %[step]\n" LOAD " {d12-d15}, [%[p2]], %[step]\n"                  \
                 MAX " q2, q2, q4\n" MAX " q3, q3, q5\n" MAX " q8, q2, q6\n" MAX " q9, q3, q7\n"             \
                 MAX " q0, q0, q8\n" MAX " q1, q1, q9\n" STORE " {d0-d3}, [%[o]], %[out_step]\n"             \
                 "subs %[n], %[n], #1\n"                                                                     \
                 "bne 1b\n"                                                                                  \
                 : [p0] "+r"(p0), [p1] "+r"(p1), [p2] "+r"(p2), [o] "+r"(o), [n] "+r"(n)                     \
                 : [step] "r"(step), [out_step] "r"(out_step)                                                \
                 : "cc", "memory", "q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q9")

inline void run_3x3s2_32_bytes(const uint8_t *p0, const uint8_t *p1, const uint8_t *p2, uint8_t *o, size_t n, size_t step, size_t out_step, float)
{
    ENGINE_MAX_POOLING_3X3S2_RUN("vld1.32", "vst1.32", "vmax.f32");
}

inline void run_3x3s2_32_bytes(const uint8_t *p0, const uint8_t *p1, const uint8_t *p2, uint8_t *o, size_t n, size_t step, size_t out_step, uint8_t)
{
    ENGINE_MAX_POOLING_3X3S2_RUN("vld1.8", "vst1.8", "vmax.u8");
}
#undef ENGINE_MAX_POOLING_3X3S2_RUN
#endif

/** A 3x3 stride-2 window along a run of `count` outputs whose windows lie inside the input: r0 points at the first
 *  window's top-left pixel, channel 0. Returns the first channel left (fewer than a register's). */
template <typename T>
size_t row_3x3s2(const uint8_t *r0, size_t in_sx, size_t in_sy, uint8_t *o0, size_t out_sx, size_t count, size_t channels)
{
    using L  = Lanes<T>;
    size_t c = 0;
#if !defined(__aarch64__) // armv7 inline assembly; AArch64 takes every channel through the intrinsics loop below
    for(; c + 32 / sizeof(T) <= channels; c += 32 / sizeof(T))
    {
        const uint8_t *p0 = r0 + c * sizeof(T);
        run_3x3s2_32_bytes(p0, p0 + in_sy, p0 + 2 * in_sy, o0 + c * sizeof(T), count, in_sx, out_sx, T{});
    }
#endif
    for(; c + L::count <= channels; c += L::count)
    {
        const uint8_t *p0 = r0 + c * sizeof(T), *p1 = p0 + in_sy, *p2 = p1 + in_sy;
        uint8_t       *o  = o0 + c * sizeof(T);
        const auto column = [&]() {
            const typename L::Vector m = L::max(L::max(L::load(p0), L::load(p1)), L::load(p2));
            p0 += in_sx, p1 += in_sx, p2 += in_sx;
            return m;
        };
        typename L::Vector previous = column();
        for(size_t n = 0; n < count; ++n, o += out_sx)
        {
            const typename L::Vector a = column(), b = column();
            L::store(o, L::max(L::max(previous, a), b));
            previous = b;
        }
    }
    return c;
}

/** Output rows [first, end) of a max pooling of `input` (validated by validate_max_pooling_window) into `output`. */
template <typename T>
void rows(const arm_compute::ITensor &input, arm_compute::ITensor &output, const arm_compute::PadStrideInfo &pad_stride, const arm_compute::Size2D &pool,
          size_t first, size_t end)
{
    const arm_compute::ITensorInfo &in = *input.info(), &out = *output.info();
    const size_t channels = in.dimension(0), in_w = in.dimension(1), in_h = in.dimension(2), out_w = out.dimension(1);
    const size_t in_sx = in.strides_in_bytes()[1], in_sy = in.strides_in_bytes()[2];
    const size_t out_sx = out.strides_in_bytes()[1], out_sy = out.strides_in_bytes()[2];
    const uint8_t *src = input.buffer() + in.offset_first_element_in_bytes();
    uint8_t       *dst = output.buffer() + out.offset_first_element_in_bytes();
    const int stride_x = pad_stride.stride().first, stride_y = pad_stride.stride().second;
    const int pad_x = pad_stride.pad_left(), pad_y = pad_stride.pad_top();
    const int kw = static_cast<int>(pool.width), kh = static_cast<int>(pool.height);
    // 3x3 stride 2 with whole-element strides: the outputs [inner_first, inner_end) of a row whose window rows are
    // all inside the input take the separable path; the others (clipped windows) the general one.
    const bool three_by_two = kw == 3 && kh == 3 && stride_x == 2 && stride_y == 2 && in_sx % sizeof(T) == 0 && out_sx % sizeof(T) == 0;
    size_t     inner_first = 0, inner_end = 0;
    if(three_by_two)
    {
        inner_first = static_cast<size_t>((pad_x + 1) / 2); // first ox with ox * 2 - pad_x >= 0
        const int last = (static_cast<int>(in_w) - 3 + pad_x); // ox * 2 - pad_x + 3 <= in_w
        inner_end = last < 0 ? 0 : std::min(out_w, static_cast<size_t>(last / 2 + 1));
        inner_end = std::max(inner_end, inner_first);
    }
    const auto general = [&](size_t ox, int y0, int y1, uint8_t *out_row) {
        const int wx = static_cast<int>(ox) * stride_x - pad_x;
        window_max<T>(src, in_sx, in_sy, std::max(0, wx), std::min(static_cast<int>(in_w), wx + kw), y0, y1, 0, channels, out_row + ox * out_sx);
    };
    for(size_t oy = first; oy < end; ++oy)
    {
        const int wy = static_cast<int>(oy) * stride_y - pad_y;
        const int y0 = std::max(0, wy), y1 = std::min(static_cast<int>(in_h), wy + kh);
        uint8_t  *out_row = dst + oy * out_sy;
        size_t    ox      = 0;
        if(three_by_two && wy >= 0 && wy + 3 <= static_cast<int>(in_h) && inner_end > inner_first)
        {
            const int    wx = static_cast<int>(inner_first) * 2 - pad_x;
            const size_t c  = row_3x3s2<T>(src + wy * in_sy + wx * in_sx, in_sx, in_sy, out_row + inner_first * out_sx, out_sx, inner_end - inner_first, channels);
            for(size_t x = inner_first; c < channels && x < inner_end; ++x) // the channels left: fewer than a register's
            {
                const int wxx = static_cast<int>(x) * 2 - pad_x;
                window_max<T>(src, in_sx, in_sy, wxx, wxx + 3, wy, wy + 3, c, channels, out_row + x * out_sx);
            }
            for(; ox < inner_first; ++ox)
            {
                general(ox, y0, y1, out_row);
            }
            ox = inner_end;
        }
        for(; ox < out_w; ++ox)
        {
            general(ox, y0, y1, out_row);
        }
    }
}
} // namespace max_pooling
} // namespace engine
