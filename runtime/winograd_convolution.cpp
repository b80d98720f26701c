#include "winograd_convolution.h"

#include "arm_compute/core/Error.h"
#include "arm_compute/core/Helpers.h"
#include "arm_compute/runtime/NEON/NEScheduler.h"

#include <algorithm>
#include <arm_neon.h>
#include <functional>

using namespace arm_compute;

namespace engine
{
namespace
{
constexpr size_t kTile = 8, kOut = 6, kPositions = kTile * kTile, kBiasPosition = 1 * kTile + 1;

// F(6, 3)'s matrices (points 0, +-1, +-2, +-1/2, infinity). Input: r = B^T d.
inline void input_1d(const float32x4_t *d, float32x4_t *r)
{
    r[0] = vmlaq_n_f32(vsubq_f32(d[0], d[6]), vsubq_f32(d[4], d[2]), 5.25f);
    r[7] = vmlaq_n_f32(vsubq_f32(d[7], d[1]), vsubq_f32(d[3], d[5]), 5.25f);
    const float32x4_t a12 = vmlsq_n_f32(vaddq_f32(d[2], d[6]), d[4], 4.25f);
    const float32x4_t b12 = vmlsq_n_f32(vaddq_f32(d[1], d[5]), d[3], 4.25f);
    r[1]                  = vaddq_f32(a12, b12);
    r[2]                  = vsubq_f32(a12, b12);
    const float32x4_t a34 = vmlsq_n_f32(vmlaq_n_f32(d[6], d[2], 0.25f), d[4], 1.25f);
    const float32x4_t b34 = vmlaq_n_f32(vmlsq_n_f32(vmulq_n_f32(d[1], 0.5f), d[3], 2.5f), d[5], 2.f);
    r[3]                  = vaddq_f32(a34, b34);
    r[4]                  = vsubq_f32(a34, b34);
    const float32x4_t a56 = vmlaq_n_f32(d[6], vmlsq_n_f32(d[2], d[4], 1.25f), 4.f);
    const float32x4_t b56 = vmlaq_n_f32(vmlsq_n_f32(vmulq_n_f32(d[1], 2.f), d[3], 2.5f), d[5], 0.5f);
    r[5]                  = vaddq_f32(a56, b56);
    r[6]                  = vsubq_f32(a56, b56);
}

// Output: o = A^T m (6 of 8).
inline void output_1d(const float32x4_t *m, float32x4_t *o)
{
    const float32x4_t e1 = vaddq_f32(m[1], m[2]), o1 = vsubq_f32(m[1], m[2]);
    const float32x4_t e3 = vaddq_f32(m[3], m[4]), o3 = vsubq_f32(m[3], m[4]);
    const float32x4_t e5 = vaddq_f32(m[5], m[6]), o5 = vsubq_f32(m[5], m[6]);
    o[0] = vmlaq_n_f32(vaddq_f32(vaddq_f32(m[0], e1), e3), e5, 32.f);
    o[2] = vmlaq_n_f32(vmlaq_n_f32(e1, e3, 4.f), e5, 8.f);
    o[4] = vmlaq_n_f32(vmlaq_n_f32(e1, e3, 16.f), e5, 2.f);
    o[1] = vmlaq_n_f32(vmlaq_n_f32(o1, o3, 2.f), o5, 16.f);
    o[3] = vmlaq_n_f32(vmlaq_n_f32(o1, o3, 8.f), o5, 4.f);
    o[5] = vaddq_f32(vmlaq_n_f32(vaddq_f32(o1, m[7]), o3, 32.f), o5);
}

// Kernel: G (8 x 3).
const float kG[kTile][3] = { { 1.f, 0.f, 0.f },
                             { -2.f / 9, -2.f / 9, -2.f / 9 },
                             { -2.f / 9, 2.f / 9, -2.f / 9 },
                             { 1.f / 90, 1.f / 45, 2.f / 45 },
                             { 1.f / 90, -1.f / 45, 2.f / 45 },
                             { 1.f / 45, 1.f / 90, 1.f / 180 },
                             { 1.f / 45, -1.f / 90, 1.f / 180 },
                             { 0.f, 0.f, 1.f } };

void split(size_t count, const char *tag, const std::function<void(size_t, size_t)> &work)
{
    const size_t                      threads = std::max<size_t>(1, std::min<size_t>(NEScheduler::get().num_threads(), count));
    std::vector<IScheduler::Workload> workloads;
    for(size_t t = 0; t < threads; ++t)
    {
        const size_t first = count * t / threads, end = count * (t + 1) / threads;
        workloads.emplace_back([&work, first, end](const ThreadInfo &) { work(first, end); });
    }
    NEScheduler::get().run_tagged_workloads(workloads, tag);
}
} // namespace

WinogradConvolution::WinogradConvolution(std::shared_ptr<IMemoryManager> memory_manager)
{
    (void)memory_manager;
}

Status WinogradConvolution::validate(const ITensorInfo *input, const ITensorInfo *weights, const ITensorInfo *biases, const ITensorInfo *output,
                                     const PadStrideInfo &conv_info, const ActivationLayerInfo &act)
{
    ARM_COMPUTE_RETURN_ERROR_ON_NULLPTR(input, weights, output);
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_type() != DataType::F32 || weights->data_type() != DataType::F32 || output->data_type() != DataType::F32
                                        || (biases != nullptr && biases->data_type() != DataType::F32),
                                    "float32 only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_layout() != DataLayout::NHWC || output->data_layout() != DataLayout::NHWC || weights->data_layout() != DataLayout::NHWC,
                                    "NHWC only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->num_dimensions() > 3 || output->num_dimensions() > 3 || weights->num_dimensions() > 4, "one image at a time");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(weights->dimension(1) != 3 || weights->dimension(2) != 3, "a 3x3 kernel only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(conv_info.stride() != std::make_pair(1U, 1U), "stride 1 only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(weights->dimension(0) != input->dimension(0), "weights must be Cin x 3 x 3 x Cout");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(weights->dimension(3) != output->dimension(0), "output channels differ from the weights' filters");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(biases != nullptr && (biases->num_dimensions() > 1 || biases->dimension(0) != weights->dimension(3)), "one bias per filter");
    const size_t width  = input->dimension(1) + conv_info.pad_left() + conv_info.pad_right();
    const size_t height = input->dimension(2) + conv_info.pad_top() + conv_info.pad_bottom();
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(width < 3 || height < 3, "kernel larger than the padded input");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(output->dimension(1) != width - 2 || output->dimension(2) != height - 2, "output size does not match the padding");
    return gemm::validate_activation(act);
}

void WinogradConvolution::configure(ITensor *input, ITensor *weights, ITensor *biases, ITensor *output, const PadStrideInfo &conv_info, const ActivationLayerInfo &act)
{
    ARM_COMPUTE_ERROR_THROW_ON(validate(input->info(), weights->info(), biases != nullptr ? biases->info() : nullptr, output->info(), conv_info, act));
    _input          = input;
    _weights        = weights;
    _biases         = biases;
    _output         = output;
    _conv_info      = conv_info;
    _clamp          = gemm::clamp_of(act);
    _tiles_x        = (output->info()->dimension(1) + kOut - 1) / kOut;
    _tiles_y        = (output->info()->dimension(2) + kOut - 1) / kOut;
    _tiles          = _tiles_x * _tiles_y;
    _panels         = gemm::round_up(_tiles, gemm::kRows) / gemm::kRows;
    _k_blocks       = gemm::round_up(input->info()->dimension(0), 4) / 4;
    _filters_padded = gemm::round_up(output->info()->dimension(0), gemm::kCols);
    // The tiles past the last one (up to a whole panel) stay zero.
    _v.assign(kPositions * _panels * _k_blocks * 16, 0.f);
    _m.assign(_panels * gemm::kRows * kPositions * _filters_padded, 0.f);
    _zeros.assign(_filters_padded, 0.f);
}

void WinogradConvolution::prepare()
{
    if(_prepared)
    {
        return;
    }
    const ITensorInfo &w        = *_weights->info();
    const size_t       channels = w.dimension(0), filters = w.dimension(3);
    std::vector<float> u(channels * filters * kPositions);
    for(size_t c = 0; c < channels; ++c)
    {
        for(size_t n = 0; n < filters; ++n)
        {
            float g[3][3], gt[kTile][3];
            for(size_t ky = 0; ky < 3; ++ky)
            {
                for(size_t kx = 0; kx < 3; ++kx)
                {
                    g[ky][kx] = *reinterpret_cast<const float *>(_weights->buffer() + w.offset_element_in_bytes(Coordinates(c, kx, ky, n)));
                }
            }
            for(size_t a = 0; a < kTile; ++a)
            {
                for(size_t kx = 0; kx < 3; ++kx)
                {
                    gt[a][kx] = kG[a][0] * g[0][kx] + kG[a][1] * g[1][kx] + kG[a][2] * g[2][kx];
                }
            }
            for(size_t a = 0; a < kTile; ++a)
            {
                for(size_t b = 0; b < kTile; ++b)
                {
                    u[(c * filters + n) * kPositions + a * kTile + b] = gt[a][0] * kG[b][0] + gt[a][1] * kG[b][1] + gt[a][2] * kG[b][2];
                }
            }
        }
    }
    const size_t per_position = gemm::packed_b_size(channels, filters);
    _u.assign(kPositions * per_position, 0.f);
    for(size_t xi = 0; xi < kPositions; ++xi)
    {
        gemm::pack_b(_u.data() + xi * per_position, channels, filters, [&](size_t k, size_t n) { return u[(k * filters + n) * kPositions + xi]; });
    }
    _bias.assign(_filters_padded, 0.f);
    for(size_t n = 0; _biases != nullptr && n < filters; ++n)
    {
        _bias[n] = *reinterpret_cast<const float *>(_biases->buffer() + _biases->info()->offset_element_in_bytes(Coordinates(n)));
    }
    _prepared = true;
}

void WinogradConvolution::transform_input(size_t first_tile, size_t end_tile)
{
    const ITensorInfo &in       = *_input->info();
    const size_t       channels = in.dimension(0);
    const int          width = static_cast<int>(in.dimension(1)), height = static_cast<int>(in.dimension(2));
    const size_t       sx = in.strides_in_bytes()[1], sy = in.strides_in_bytes()[2];
    const uint8_t     *src             = _input->buffer() + in.offset_first_element_in_bytes();
    const size_t       position_stride = _panels * _k_blocks * 16;
    for(size_t t = first_tile; t < end_tile; ++t)
    {
        const int iy0      = static_cast<int>(t / _tiles_x * kOut) - static_cast<int>(_conv_info.pad_top());
        const int ix0      = static_cast<int>(t % _tiles_x * kOut) - static_cast<int>(_conv_info.pad_left());
        const bool inside  = iy0 >= 0 && ix0 >= 0 && iy0 + static_cast<int>(kTile) <= height && ix0 + static_cast<int>(kTile) <= width;
        float     *v       = _v.data() + t / gemm::kRows * _k_blocks * 16 + t % gemm::kRows * 4;
        for(size_t block = 0; block < _k_blocks; ++block, v += 16)
        {
            const size_t c    = block * 4;
            const bool   full = c + 4 <= channels;
            float32x4_t  rows[kTile][kTile];
            for(size_t i = 0; i < kTile; ++i)
            {
                float32x4_t d[kTile];
                const int   iy = iy0 + static_cast<int>(i);
                if(inside && full)
                {
                    const uint8_t *p = src + iy * sy + ix0 * sx + c * sizeof(float);
                    for(size_t j = 0; j < kTile; ++j, p += sx)
                    {
                        d[j] = vld1q_f32(reinterpret_cast<const float *>(p));
                    }
                }
                else
                {
                    for(size_t j = 0; j < kTile; ++j)
                    {
                        const int ix = ix0 + static_cast<int>(j);
                        float     lanes[4] = { 0.f, 0.f, 0.f, 0.f };
                        if(iy >= 0 && iy < height && ix >= 0 && ix < width)
                        {
                            const float *p = reinterpret_cast<const float *>(src + iy * sy + ix * sx) + c;
                            for(size_t l = 0; l < 4 && c + l < channels; ++l)
                            {
                                lanes[l] = p[l];
                            }
                        }
                        d[j] = vld1q_f32(lanes);
                    }
                }
                input_1d(d, rows[i]);
            }
            for(size_t b = 0; b < kTile; ++b)
            {
                float32x4_t d[kTile], r[kTile];
                for(size_t a = 0; a < kTile; ++a)
                {
                    d[a] = rows[a][b];
                }
                input_1d(d, r);
                for(size_t a = 0; a < kTile; ++a)
                {
                    vst1q_f32(v + (a * kTile + b) * position_stride, r[a]);
                }
            }
        }
    }
}

void WinogradConvolution::multiply(size_t first_position, size_t end_position)
{
    const size_t channels = _input->info()->dimension(0), filters = _output->info()->dimension(0);
    const size_t per_position = gemm::packed_b_size(channels, filters), blocks = _filters_padded / gemm::kCols;
    const size_t row_stride   = kPositions * _filters_padded * sizeof(float);
    const gemm::Clamp none;
    for(size_t xi = first_position; xi < end_position; ++xi)
    {
        const float *bias = xi == kBiasPosition ? _bias.data() : _zeros.data();
        for(size_t panel = 0; panel < _panels; ++panel)
        {
            const float *a = _v.data() + (xi * _panels + panel) * _k_blocks * 16;
            const float *b = _u.data() + xi * per_position;
            float       *m = _m.data() + (panel * gemm::kRows * kPositions + xi) * _filters_padded;
            for(size_t block = 0; block < blocks; ++block, b += _k_blocks * 4 * gemm::kCols)
            {
                gemm::micro_kernel(a, b, _k_blocks, bias + block * gemm::kCols, m + block * gemm::kCols, row_stride, none);
            }
        }
    }
}

void WinogradConvolution::transform_output(size_t first_tile, size_t end_tile)
{
    const ITensorInfo &out     = *_output->info();
    const size_t       filters = out.dimension(0), width = out.dimension(1), height = out.dimension(2);
    const size_t       sx = out.strides_in_bytes()[1], sy = out.strides_in_bytes()[2];
    uint8_t           *dst = _output->buffer() + out.offset_first_element_in_bytes();
    const float32x4_t  lo = vdupq_n_f32(_clamp.lo), hi = vdupq_n_f32(_clamp.hi);
    for(size_t t = first_tile; t < end_tile; ++t)
    {
        const size_t oy0 = t / _tiles_x * kOut, ox0 = t % _tiles_x * kOut;
        const size_t rows = std::min(kOut, height - oy0), cols = std::min(kOut, width - ox0);
        const float *m_tile = _m.data() + t * kPositions * _filters_padded;
        for(size_t c = 0; c < filters; c += 4)
        {
            float32x4_t s[kTile][kOut];
            for(size_t a = 0; a < kTile; ++a)
            {
                float32x4_t m[kTile];
                for(size_t b = 0; b < kTile; ++b)
                {
                    m[b] = vld1q_f32(m_tile + (a * kTile + b) * _filters_padded + c);
                }
                output_1d(m, s[a]);
            }
            const size_t lanes = std::min<size_t>(4, filters - c);
            for(size_t x = 0; x < cols; ++x)
            {
                float32x4_t d[kTile], o[kOut];
                for(size_t a = 0; a < kTile; ++a)
                {
                    d[a] = s[a][x];
                }
                output_1d(d, o);
                uint8_t *p = dst + oy0 * sy + (ox0 + x) * sx + c * sizeof(float);
                for(size_t y = 0; y < rows; ++y, p += sy)
                {
                    float32x4_t value = o[y];
                    if(_clamp.flags & 1)
                    {
                        value = vmaxq_f32(value, lo);
                    }
                    if(_clamp.flags & 2)
                    {
                        value = vminq_f32(value, hi);
                    }
                    if(lanes == 4)
                    {
                        vst1q_f32(reinterpret_cast<float *>(p), value);
                        continue;
                    }
                    float values[4];
                    vst1q_f32(values, value);
                    std::copy(values, values + lanes, reinterpret_cast<float *>(p));
                }
            }
        }
    }
}

void WinogradConvolution::run()
{
    prepare();
    split(_tiles, "WinogradConvolution input", [this](size_t first, size_t end) { transform_input(first, end); });
    split(kPositions, "WinogradConvolution products", [this](size_t first, size_t end) { multiply(first, end); });
    split(_tiles, "WinogradConvolution output", [this](size_t first, size_t end) { transform_output(first, end); });
}
} // namespace engine
