#include "depthwise_convolution.h"

#include "engine.h"

#include "arm_compute/core/Error.h"
#include "arm_compute/core/Helpers.h"
#include "arm_compute/runtime/NEON/NEScheduler.h"

#include <algorithm>

#include <arm_neon.h>

using namespace arm_compute;

namespace engine
{
namespace
{
constexpr size_t kLanes = 4, kPixels = 4;

inline float32x4_t mla(float32x4_t acc, float32x4_t x, float32x4_t w)
{
#if defined(__aarch64__)
    return vfmaq_f32(acc, x, w);
#else
    return vmlaq_f32(acc, x, w);
#endif
}

/** What a group of output pixels needs besides its pointers. */
struct Shape
{
    int            in_w, in_h, pad_x, pad_y;
    size_t         channels, in_sx, in_sy, out_w, out_sx, out_sy;
    const uint8_t *src;
    uint8_t       *dst;
    const float   *weights; // per block of 4 channels: K x K taps of 4 floats
    const float   *bias;    // per block of 4 channels
    float          lo, hi;
};

/** 4 output pixels x 4 channels: `in` points at the first window's top-left pixel (channel block), input pixels
 *  sx bytes apart in a row, rows sy bytes apart; pixel p is stored at out + p * osx. */
template <int K, int S, unsigned Flags>
inline void group(const uint8_t *in, size_t sx, size_t sy, const float *w, const float *bias, uint8_t *out, size_t osx, float32x4_t lo, float32x4_t hi)
{
    constexpr int     columns = S * (kPixels - 1) + K; // input columns of the 4 windows' rows
    const float32x4_t b       = vld1q_f32(bias);
    float32x4_t       a0 = b, a1 = b, a2 = b, a3 = b;
#pragma GCC unroll 5
    for(int ky = 0; ky < K; ++ky, in += sy)
    {
        float32x4_t    x[columns];
        const uint8_t *r = in;
#pragma GCC unroll 11
        for(int j = 0; j < columns; ++j, r += sx)
        {
            x[j] = vld1q_f32(reinterpret_cast<const float *>(r));
        }
#pragma GCC unroll 5
        for(int kx = 0; kx < K; ++kx, w += kLanes)
        {
            const float32x4_t t = vld1q_f32(w);
            a0                  = mla(a0, x[kx], t);
            a1                  = mla(a1, x[S + kx], t);
            a2                  = mla(a2, x[2 * S + kx], t);
            a3                  = mla(a3, x[3 * S + kx], t);
        }
    }
    if(Flags & 1)
    {
        a0 = vmaxq_f32(a0, lo), a1 = vmaxq_f32(a1, lo), a2 = vmaxq_f32(a2, lo), a3 = vmaxq_f32(a3, lo);
    }
    if(Flags & 2)
    {
        a0 = vminq_f32(a0, hi), a1 = vminq_f32(a1, hi), a2 = vminq_f32(a2, hi), a3 = vminq_f32(a3, hi);
    }
    vst1q_f32(reinterpret_cast<float *>(out), a0);
    vst1q_f32(reinterpret_cast<float *>(out + osx), a1);
    vst1q_f32(reinterpret_cast<float *>(out + 2 * osx), a2);
    vst1q_f32(reinterpret_cast<float *>(out + 3 * osx), a3);
}

/** The same group where its windows cross the padding or the input's end: only window rows [ky0, ky1) and input
 *  columns [j0, j1) of the group's span exist (the others are zeros and are neither read nor multiplied); `in`
 *  points at row ky0, column j0. */
template <int K, int S, unsigned Flags>
inline void group_clipped(const uint8_t *in, size_t sx, size_t sy, int ky0, int ky1, int j0, int j1, const float *w, const float *bias, uint8_t *out,
                          size_t osx, float32x4_t lo, float32x4_t hi)
{
    constexpr int     columns = S * (kPixels - 1) + K;
    const float32x4_t b       = vld1q_f32(bias), zero = vdupq_n_f32(0.f);
    float32x4_t       a0 = b, a1 = b, a2 = b, a3 = b;
    w += ky0 * K * kLanes;
    for(int ky = ky0; ky < ky1; ++ky, in += sy)
    {
        float32x4_t    x[columns];
        const uint8_t *r = in;
#pragma GCC unroll 11
        for(int j = 0; j < columns; ++j)
        {
            if(j >= j0 && j < j1)
            {
                x[j] = vld1q_f32(reinterpret_cast<const float *>(r));
                r += sx;
            }
            else
            {
                x[j] = zero;
            }
        }
#pragma GCC unroll 5
        for(int kx = 0; kx < K; ++kx, w += kLanes)
        {
            const float32x4_t t = vld1q_f32(w);
            a0                  = mla(a0, x[kx], t);
            a1                  = mla(a1, x[S + kx], t);
            a2                  = mla(a2, x[2 * S + kx], t);
            a3                  = mla(a3, x[3 * S + kx], t);
        }
    }
    if(Flags & 1)
    {
        a0 = vmaxq_f32(a0, lo), a1 = vmaxq_f32(a1, lo), a2 = vmaxq_f32(a2, lo), a3 = vmaxq_f32(a3, lo);
    }
    if(Flags & 2)
    {
        a0 = vminq_f32(a0, hi), a1 = vminq_f32(a1, hi), a2 = vminq_f32(a2, hi), a3 = vminq_f32(a3, hi);
    }
    vst1q_f32(reinterpret_cast<float *>(out), a0);
    vst1q_f32(reinterpret_cast<float *>(out + osx), a1);
    vst1q_f32(reinterpret_cast<float *>(out + 2 * osx), a2);
    vst1q_f32(reinterpret_cast<float *>(out + 3 * osx), a3);
}

/** Output rows [first, end): groups of 4 pixels whose windows lie inside the input read it in place, the others
 *  only the window rows and columns that exist; a row of fewer than 4 pixels goes through a private block, and the
 *  channel tail (fewer than 4) through a zero-padded copy of its windows. */
template <int K, int S, unsigned Flags>
void rows_of(const Shape &s, size_t first, size_t end)
{
    constexpr int     columns = S * (kPixels - 1) + K;
    const float32x4_t lo = vdupq_n_f32(s.lo), hi = vdupq_n_f32(s.hi);
    const size_t      whole = s.channels / kLanes, blocks = (s.channels + kLanes - 1) / kLanes;
    float             patch[K * columns * kLanes];
    float             block[kPixels * kLanes];
    for(size_t oy = first; oy < end; ++oy)
    {
        const int iy0 = static_cast<int>(oy) * S - s.pad_y;
        const int ky0 = std::max(0, -iy0), ky1 = std::min(K, s.in_h - iy0);
        for(size_t gx = 0; gx < s.out_w; gx += kPixels)
        {
            // The last group ends at the row's end (overlapping the one before) when the row has 4 pixels or more.
            const size_t x0     = s.out_w >= kPixels ? std::min(gx, s.out_w - kPixels) : 0;
            const size_t pixels = std::min(kPixels, s.out_w - x0);
            const int    ix0    = static_cast<int>(x0) * S - s.pad_x;
            const int    j0 = std::max(0, -ix0), j1 = std::min(columns, s.in_w - ix0);
            uint8_t     *o = s.dst + oy * s.out_sy + x0 * s.out_sx;
            if(ky0 == 0 && ky1 == K && j0 == 0 && j1 == columns && pixels == kPixels)
            {
                const uint8_t *in = s.src + iy0 * s.in_sy + ix0 * s.in_sx;
                for(size_t cb = 0; cb < whole; ++cb)
                {
                    group<K, S, Flags>(in + cb * kLanes * sizeof(float), s.in_sx, s.in_sy, s.weights + cb * K * K * kLanes, s.bias + cb * kLanes,
                                       o + cb * kLanes * sizeof(float), s.out_sx, lo, hi);
                }
            }
            else
            {
                const uint8_t *in = s.src + (iy0 + ky0) * s.in_sy + (ix0 + j0) * s.in_sx;
                for(size_t cb = 0; cb < whole; ++cb)
                {
                    const size_t c0 = cb * kLanes * sizeof(float);
                    if(pixels == kPixels)
                    {
                        group_clipped<K, S, Flags>(in + c0, s.in_sx, s.in_sy, ky0, ky1, j0, j1, s.weights + cb * K * K * kLanes, s.bias + cb * kLanes,
                                                   o + c0, s.out_sx, lo, hi);
                        continue;
                    }
                    group_clipped<K, S, Flags>(in + c0, s.in_sx, s.in_sy, ky0, ky1, j0, j1, s.weights + cb * K * K * kLanes, s.bias + cb * kLanes,
                                               reinterpret_cast<uint8_t *>(block), kLanes * sizeof(float), lo, hi);
                    for(size_t p = 0; p < pixels; ++p)
                    {
                        vst1q_f32(reinterpret_cast<float *>(o + p * s.out_sx + c0), vld1q_f32(block + p * kLanes));
                    }
                }
            }
            if(whole < blocks) // the channel tail: through the zero-padded copy and the private block
            {
                const size_t c0 = whole * kLanes, lanes = s.channels - c0;
                std::fill(patch, patch + K * columns * kLanes, 0.f);
                for(int ky = ky0; ky < ky1; ++ky)
                {
                    for(int j = j0; j < j1; ++j)
                    {
                        const float *x = reinterpret_cast<const float *>(s.src + (iy0 + ky) * s.in_sy + (ix0 + j) * s.in_sx) + c0;
                        std::copy(x, x + lanes, patch + (ky * columns + j) * kLanes);
                    }
                }
                group<K, S, Flags>(reinterpret_cast<const uint8_t *>(patch), kLanes * sizeof(float), columns * kLanes * sizeof(float),
                                   s.weights + whole * K * K * kLanes, s.bias + whole * kLanes, reinterpret_cast<uint8_t *>(block), kLanes * sizeof(float),
                                   lo, hi);
                for(size_t p = 0; p < pixels; ++p)
                {
                    std::copy(block + p * kLanes, block + p * kLanes + lanes, reinterpret_cast<float *>(o + p * s.out_sx) + c0);
                }
            }
            if(x0 + kPixels >= s.out_w)
            {
                break;
            }
        }
    }
}
using RowsFn = void (*)(const Shape &, size_t, size_t);

template <int K, int S>
RowsFn rows_for(unsigned flags)
{
    return flags == 0 ? &rows_of<K, S, 0> : flags == 1 ? &rows_of<K, S, 1> : &rows_of<K, S, 3>;
}
} // namespace

DepthwiseConvolution::DepthwiseConvolution(std::shared_ptr<IMemoryManager> memory_manager)
{
    (void)memory_manager;
}

Status DepthwiseConvolution::validate(const ITensorInfo *input, const ITensorInfo *weights, const ITensorInfo *biases, const ITensorInfo *output,
                                      const PadStrideInfo &conv_info, const ActivationLayerInfo &act)
{
    ARM_COMPUTE_RETURN_ERROR_ON_NULLPTR(input, weights, output);
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_type() != DataType::F32 || weights->data_type() != DataType::F32 || output->data_type() != DataType::F32
                                        || (biases != nullptr && biases->data_type() != DataType::F32),
                                    "float32 only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_layout() != DataLayout::NHWC || output->data_layout() != DataLayout::NHWC || weights->data_layout() != DataLayout::NHWC,
                                    "NHWC only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->num_dimensions() > 3 || output->num_dimensions() > 3 || weights->num_dimensions() > 3, "one image at a time");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(weights->dimension(0) != input->dimension(0) || output->dimension(0) != input->dimension(0),
                                    "one filter per channel only (depth multiplier 1): weights must be C x kernel width x kernel height");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(weights->dimension(1) != weights->dimension(2) || (weights->dimension(1) != 3 && weights->dimension(1) != 5),
                                    "a 3x3 or 5x5 kernel only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(conv_info.stride().first != conv_info.stride().second || conv_info.stride().first < 1 || conv_info.stride().first > 2,
                                    "stride 1 or 2 (the same in both directions) only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(biases != nullptr && (biases->num_dimensions() > 1 || biases->dimension(0) != input->dimension(0)), "one bias per channel");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->strides_in_bytes()[1] % sizeof(float) != 0 || input->strides_in_bytes()[2] % sizeof(float) != 0
                                        || output->strides_in_bytes()[1] % sizeof(float) != 0 || output->strides_in_bytes()[2] % sizeof(float) != 0,
                                    "strides must be whole floats");
    const size_t width  = input->dimension(1) + conv_info.pad_left() + conv_info.pad_right();
    const size_t height = input->dimension(2) + conv_info.pad_top() + conv_info.pad_bottom();
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(width < weights->dimension(1) || height < weights->dimension(2), "kernel larger than the padded input");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(output->dimension(1) != (width - weights->dimension(1)) / conv_info.stride().first + 1
                                        || output->dimension(2) != (height - weights->dimension(2)) / conv_info.stride().second + 1,
                                    "output size does not match the kernel, stride and padding (floor rounding)");
    return gemm::validate_activation(act);
}

void DepthwiseConvolution::configure(ITensor *input, ITensor *weights, ITensor *biases, ITensor *output, const PadStrideInfo &conv_info,
                                     const ActivationLayerInfo &act)
{
    ARM_COMPUTE_ERROR_THROW_ON(validate(input->info(), weights->info(), biases != nullptr ? biases->info() : nullptr, output->info(), conv_info, act));
    _input     = input;
    _weights   = weights;
    _biases    = biases;
    _output    = output;
    _conv_info = conv_info;
    _clamp     = gemm::clamp_of(act);
    _kernel    = weights->info()->dimension(1);
}

void DepthwiseConvolution::prepare()
{
    if(_prepared)
    {
        return;
    }
    const ITensorInfo &w        = *_weights->info();
    const size_t       channels = w.dimension(0), k = _kernel;
    const size_t       blocks   = (channels + kLanes - 1) / kLanes;
    _packed_weights.assign(blocks * k * k * kLanes, 0.f);
    _bias.assign(blocks * kLanes, 0.f);
    for(size_t c = 0; c < channels; ++c)
    {
        for(size_t ky = 0; ky < k; ++ky)
        {
            for(size_t kx = 0; kx < k; ++kx)
            {
                _packed_weights[((c / kLanes) * k * k + ky * k + kx) * kLanes + c % kLanes] =
                    *reinterpret_cast<const float *>(_weights->buffer() + w.offset_element_in_bytes(Coordinates(c, kx, ky)));
            }
        }
        if(_biases != nullptr)
        {
            _bias[c] = *reinterpret_cast<const float *>(_biases->buffer() + _biases->info()->offset_element_in_bytes(Coordinates(c)));
        }
    }
    _weights->mark_as_unused(); // packed: the network frees the loaded copy
    _prepared = true;
}

void DepthwiseConvolution::rows(size_t first, size_t end) const
{
    const ITensorInfo &in = *_input->info(), &out = *_output->info();
    Shape              s{};
    s.in_w     = static_cast<int>(in.dimension(1));
    s.in_h     = static_cast<int>(in.dimension(2));
    s.pad_x    = static_cast<int>(_conv_info.pad_left());
    s.pad_y    = static_cast<int>(_conv_info.pad_top());
    s.channels = in.dimension(0);
    s.in_sx    = in.strides_in_bytes()[1];
    s.in_sy    = in.strides_in_bytes()[2];
    s.out_w    = out.dimension(1);
    s.out_sx   = out.strides_in_bytes()[1];
    s.out_sy   = out.strides_in_bytes()[2];
    s.src      = _input->buffer() + in.offset_first_element_in_bytes();
    s.dst      = _output->buffer() + out.offset_first_element_in_bytes();
    s.weights  = _packed_weights.data();
    s.bias     = _bias.data();
    s.lo       = _clamp.lo;
    s.hi       = _clamp.hi;
    const unsigned flags  = _clamp.flags & 3;
    const bool     stride = _conv_info.stride().first == 2;
    const RowsFn   fn     = _kernel == 3 ? (stride ? rows_for<3, 2>(flags) : rows_for<3, 1>(flags)) : (stride ? rows_for<5, 2>(flags) : rows_for<5, 1>(flags));
    fn(s, first, end);
}

void DepthwiseConvolution::run()
{
    prepare();
    split(_output->info()->dimension(2), "DepthwiseConvolution", [this](size_t first, size_t end) { rows(first, end); });
}
} // namespace engine
