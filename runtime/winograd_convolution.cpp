#include "winograd_convolution.h"

#include "engine.h"

#include "arm_compute/core/Error.h"
#include "arm_compute/core/Helpers.h"
#include "arm_compute/runtime/NEON/NEScheduler.h"

#include <algorithm>
#include <arm_neon.h>
#include <cstring>
#include <functional>

using namespace arm_compute;

namespace engine
{
namespace
{
constexpr size_t kMaxTile = 8;

#if defined(__aarch64__)
// AArch64's vmlaq_lane_f32 / vmlsq_lane_f32 are an unfused multiply and add (two instructions each); the fused
// forms are one (and round once).
#define ENGINE_MLA_LANE vfmaq_lane_f32
#define ENGINE_MLS_LANE vfmsq_lane_f32
#else
#define ENGINE_MLA_LANE vmlaq_lane_f32
#define ENGINE_MLS_LANE vmlsq_lane_f32
#endif

// F(6, 3)'s matrices (points 0, +-1, +-2, +-1/2, infinity), one 1-D pass over 8 vectors of 4 channels read at a
// stride and written at a stride (floats), every value in a register, the constants as lanes of two vectors.
// Input: r = B^T d.
__attribute__((always_inline)) inline void input_1d(const float *d_at, size_t d_step, float *r_at, size_t r_step, float32x4_t k0, float32x4_t k1)
{
    // k0 = {5.25, 4.25, 1.25, 2.5}, k1 = {0.25, 0.5, 2, 4}
    const float32x2_t k0l = vget_low_f32(k0), k0h = vget_high_f32(k0), k1l = vget_low_f32(k1), k1h = vget_high_f32(k1);
    const float32x4_t d0 = vld1q_f32(d_at), d1 = vld1q_f32(d_at + d_step), d2 = vld1q_f32(d_at + 2 * d_step), d3 = vld1q_f32(d_at + 3 * d_step);
    const float32x4_t d4 = vld1q_f32(d_at + 4 * d_step), d5 = vld1q_f32(d_at + 5 * d_step), d6 = vld1q_f32(d_at + 6 * d_step), d7 = vld1q_f32(d_at + 7 * d_step);
    vst1q_f32(r_at, ENGINE_MLA_LANE(vsubq_f32(d0, d6), vsubq_f32(d4, d2), k0l, 0));
    vst1q_f32(r_at + 7 * r_step, ENGINE_MLA_LANE(vsubq_f32(d7, d1), vsubq_f32(d3, d5), k0l, 0));
    const float32x4_t a12 = ENGINE_MLS_LANE(vaddq_f32(d2, d6), d4, k0l, 1);
    const float32x4_t b12 = ENGINE_MLS_LANE(vaddq_f32(d1, d5), d3, k0l, 1);
    vst1q_f32(r_at + r_step, vaddq_f32(a12, b12));
    vst1q_f32(r_at + 2 * r_step, vsubq_f32(a12, b12));
    const float32x4_t a34 = ENGINE_MLS_LANE(ENGINE_MLA_LANE(d6, d2, k1l, 0), d4, k0h, 0);
    const float32x4_t b34 = ENGINE_MLA_LANE(ENGINE_MLS_LANE(vmulq_lane_f32(d1, k1l, 1), d3, k0h, 1), d5, k1h, 0);
    vst1q_f32(r_at + 3 * r_step, vaddq_f32(a34, b34));
    vst1q_f32(r_at + 4 * r_step, vsubq_f32(a34, b34));
    const float32x4_t a56 = ENGINE_MLA_LANE(d6, ENGINE_MLS_LANE(d2, d4, k0h, 0), k1h, 1);
    const float32x4_t b56 = ENGINE_MLA_LANE(ENGINE_MLS_LANE(vmulq_lane_f32(d1, k1h, 0), d3, k0h, 1), d5, k1l, 1);
    vst1q_f32(r_at + 5 * r_step, vaddq_f32(a56, b56));
    vst1q_f32(r_at + 6 * r_step, vsubq_f32(a56, b56));
}

// Output: o = A^T m (6 of 8), into o[0..5]. k = {2, 4, 8, 16}; 32 = 2 x 16.
__attribute__((always_inline)) inline void output_1d(const float *m_at, size_t m_step, float32x4_t *o, float32x4_t k)
{
    const float32x2_t kl = vget_low_f32(k), kh = vget_high_f32(k);
    const float32x4_t m0 = vld1q_f32(m_at), m1 = vld1q_f32(m_at + m_step), m2 = vld1q_f32(m_at + 2 * m_step), m3 = vld1q_f32(m_at + 3 * m_step);
    const float32x4_t m4 = vld1q_f32(m_at + 4 * m_step), m5 = vld1q_f32(m_at + 5 * m_step), m6 = vld1q_f32(m_at + 6 * m_step), m7 = vld1q_f32(m_at + 7 * m_step);
    const float32x4_t e1 = vaddq_f32(m1, m2), o1 = vsubq_f32(m1, m2);
    const float32x4_t e3 = vaddq_f32(m3, m4), o3 = vsubq_f32(m3, m4);
    const float32x4_t e5 = vaddq_f32(m5, m6), o5 = vsubq_f32(m5, m6);
    const float32x4_t e5x2 = vaddq_f32(e5, e5), o3x2 = vaddq_f32(o3, o3);
    o[0] = ENGINE_MLA_LANE(vaddq_f32(vaddq_f32(m0, e1), e3), e5x2, kh, 1);
    o[2] = ENGINE_MLA_LANE(ENGINE_MLA_LANE(e1, e3, kl, 1), e5, kh, 0);
    o[4] = vaddq_f32(ENGINE_MLA_LANE(e1, e3, kh, 1), e5x2);
    o[1] = ENGINE_MLA_LANE(vaddq_f32(o1, o3x2), o5, kh, 1);
    o[3] = ENGINE_MLA_LANE(ENGINE_MLA_LANE(o1, o3, kh, 0), o5, kl, 1);
    o[5] = vaddq_f32(ENGINE_MLA_LANE(vaddq_f32(o1, m7), o3x2, kh, 1), o5);
}

// Kernel: G (8 x 3).
const float kG[8][3] = { { 1.f, 0.f, 0.f },
                             { -2.f / 9, -2.f / 9, -2.f / 9 },
                             { -2.f / 9, 2.f / 9, -2.f / 9 },
                             { 1.f / 90, 1.f / 45, 2.f / 45 },
                             { 1.f / 90, -1.f / 45, 2.f / 45 },
                             { 1.f / 45, 1.f / 90, 1.f / 180 },
                             { 1.f / 45, -1.f / 90, 1.f / 180 },
                             { 0.f, 0.f, 1.f } };

// F(4, 3)'s matrices (points 0, +-1, +-2, infinity) for small images, where F(6, 3)'s 6 x 6 tiles waste most of a
// 14 x 14 output (9 tiles of 36 for 196 values). Input: r = B^T d over 6 vectors; k0 = {4, 5, 2, 0}.
__attribute__((always_inline)) inline void input_1d_43(const float *d_at, size_t d_step, float *r_at, size_t r_step, float32x4_t k0, float32x4_t)
{
    const float32x2_t kl = vget_low_f32(k0), kh = vget_high_f32(k0);
    const float32x4_t d0 = vld1q_f32(d_at), d1 = vld1q_f32(d_at + d_step), d2 = vld1q_f32(d_at + 2 * d_step), d3 = vld1q_f32(d_at + 3 * d_step);
    const float32x4_t d4 = vld1q_f32(d_at + 4 * d_step), d5 = vld1q_f32(d_at + 5 * d_step);
    vst1q_f32(r_at, ENGINE_MLS_LANE(ENGINE_MLA_LANE(d4, d0, kl, 0), d2, kl, 1));                // 4 d0 - 5 d2 + d4
    const float32x4_t s12 = vaddq_f32(d1, d2), s34 = vaddq_f32(d3, d4);
    vst1q_f32(r_at + r_step, ENGINE_MLS_LANE(s34, s12, kl, 0));                                  // d3 + d4 - 4 (d1 + d2)
    const float32x4_t m12 = vsubq_f32(d1, d2), m43 = vsubq_f32(d4, d3);
    vst1q_f32(r_at + 2 * r_step, ENGINE_MLA_LANE(m43, m12, kl, 0));                              // d4 - d3 + 4 (d1 - d2)
    const float32x4_t m42 = vsubq_f32(d4, d2), m31 = vsubq_f32(d3, d1);
    vst1q_f32(r_at + 3 * r_step, ENGINE_MLA_LANE(m42, m31, kh, 0));                              // d4 - d2 + 2 (d3 - d1)
    vst1q_f32(r_at + 4 * r_step, ENGINE_MLS_LANE(m42, m31, kh, 0));                              // d4 - d2 - 2 (d3 - d1)
    vst1q_f32(r_at + 5 * r_step, ENGINE_MLS_LANE(ENGINE_MLA_LANE(d5, d1, kl, 0), d3, kl, 1));    // 4 d1 - 5 d3 + d5
}

// Output: o = A^T m (4 of 6). k = {2, 4, 8, 16}.
__attribute__((always_inline)) inline void output_1d_43(const float *m_at, size_t m_step, float32x4_t *o, float32x4_t k)
{
    const float32x2_t kl = vget_low_f32(k), kh = vget_high_f32(k);
    const float32x4_t m0 = vld1q_f32(m_at), m1 = vld1q_f32(m_at + m_step), m2 = vld1q_f32(m_at + 2 * m_step), m3 = vld1q_f32(m_at + 3 * m_step);
    const float32x4_t m4 = vld1q_f32(m_at + 4 * m_step), m5 = vld1q_f32(m_at + 5 * m_step);
    const float32x4_t e1 = vaddq_f32(m1, m2), o1 = vsubq_f32(m1, m2), e3 = vaddq_f32(m3, m4), o3 = vsubq_f32(m3, m4);
    o[0] = vaddq_f32(vaddq_f32(m0, e1), e3);
    o[1] = ENGINE_MLA_LANE(o1, o3, kl, 0);
    o[2] = ENGINE_MLA_LANE(e1, e3, kl, 1);
    o[3] = ENGINE_MLA_LANE(vaddq_f32(o1, m5), o3, kh, 0);
}

const float kG43[6][3] = { { 1.f / 4, 0.f, 0.f },
                           { -1.f / 6, -1.f / 6, -1.f / 6 },
                           { -1.f / 6, 1.f / 6, -1.f / 6 },
                           { 1.f / 24, 1.f / 12, 1.f / 6 },
                           { 1.f / 24, -1.f / 12, 1.f / 6 },
                           { 0.f, 0.f, 1.f } };

/** The matrices of F(Tile - 2, 3). */
template <size_t Tile>
struct Transforms;
template <>
struct Transforms<8>
{
    __attribute__((always_inline)) static void input(const float *d, size_t ds, float *r, size_t rs, float32x4_t k0, float32x4_t k1)
    {
        input_1d(d, ds, r, rs, k0, k1);
    }
    __attribute__((always_inline)) static void output(const float *m, size_t ms, float32x4_t *o, float32x4_t k)
    {
        output_1d(m, ms, o, k);
    }
    static float g(size_t row, size_t col)
    {
        return kG[row][col];
    }
    static constexpr float c0[4] = { 5.25f, 4.25f, 1.25f, 2.5f }, c1[4] = { 0.25f, 0.5f, 2.f, 4.f };
};
template <>
struct Transforms<6>
{
    __attribute__((always_inline)) static void input(const float *d, size_t ds, float *r, size_t rs, float32x4_t k0, float32x4_t k1)
    {
        input_1d_43(d, ds, r, rs, k0, k1);
    }
    __attribute__((always_inline)) static void output(const float *m, size_t ms, float32x4_t *o, float32x4_t k)
    {
        output_1d_43(m, ms, o, k);
    }
    static float g(size_t row, size_t col)
    {
        return kG43[row][col];
    }
    static constexpr float c0[4] = { 4.f, 5.f, 2.f, 0.f }, c1[4] = { 0.f, 0.f, 0.f, 0.f };
};
constexpr float Transforms<8>::c0[4];
constexpr float Transforms<8>::c1[4];
constexpr float Transforms<6>::c0[4];
constexpr float Transforms<6>::c1[4];

} // namespace

WinogradConvolution::WinogradConvolution(std::shared_ptr<IMemoryManager> memory_manager, size_t output_tile)
    : _tile(output_tile + 2), _out(output_tile)
{
    (void)memory_manager;
    ARM_COMPUTE_ERROR_ON_MSG(output_tile != 6 && output_tile != 4, "F(6x6, 3x3) or F(4x4, 3x3) only");
}

Status WinogradConvolution::validate(const ITensorInfo *input, const ITensorInfo *weights, const ITensorInfo *biases, const ITensorInfo *output,
                                     const PadStrideInfo &conv_info, const ActivationLayerInfo &act)
{
    ARM_COMPUTE_RETURN_ERROR_ON_NULLPTR(input, weights, output);
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(weights->num_dimensions() < 3 || weights->dimension(1) != 3 || weights->dimension(2) != 3, "a 3x3 kernel only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(conv_info.stride() != std::make_pair(1U, 1U), "stride 1 only");
    return gemm::validate_nhwc_convolution(input, weights, biases, output, conv_info, act, false, true);
}

void WinogradConvolution::configure(ITensor *input, ITensor *weights, ITensor *biases, ITensor *output, const PadStrideInfo &conv_info, const ActivationLayerInfo &act)
{
    ARM_COMPUTE_ERROR_THROW_ON(validate(input->info(), weights->info(), biases != nullptr ? biases->info() : nullptr, output->info(), conv_info, act));
    _input          = input;
    _weights        = weights;
    _biases         = biases;
    _output         = output;
    _conv_info      = conv_info;
    _grid           = gemm::output_grid(*output->info());
    _clamp          = gemm::on_grid(gemm::clamp_of(act), _grid);
    _tiles_x        = (output->info()->dimension(1) + _out - 1) / _out;
    _tiles_y        = (output->info()->dimension(2) + _out - 1) / _out;
    _tiles          = _tiles_x * _tiles_y;
    _panels         = gemm::round_up(_tiles, gemm::kRows) / gemm::kRows;
    _k_blocks       = gemm::round_up(input->info()->dimension(0), 4) / 4;
    _filters_padded = gemm::round_up(output->info()->dimension(0), gemm::kCols);
    // The tiles past the last one (up to a whole panel) stay zero.
    _v.assign(_tile * _tile * _panels * _k_blocks * 16, 0.f);
    _m.assign(_panels * gemm::kRows * _tile * _tile * _filters_padded, 0.f);
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
    const size_t       tile = _tile, positions = _tile * _tile;
    float (*const g_of)(size_t, size_t) = _tile == 8 ? &Transforms<8>::g : &Transforms<6>::g;
    std::vector<float> u(channels * filters * positions);
    for(size_t c = 0; c < channels; ++c)
    {
        for(size_t n = 0; n < filters; ++n)
        {
            float g[3][3], gt[kMaxTile][3];
            for(size_t ky = 0; ky < 3; ++ky)
            {
                for(size_t kx = 0; kx < 3; ++kx)
                {
                    g[ky][kx] = *reinterpret_cast<const float *>(_weights->buffer() + w.offset_element_in_bytes(Coordinates(c, kx, ky, n)));
                }
            }
            for(size_t a = 0; a < tile; ++a)
            {
                for(size_t kx = 0; kx < 3; ++kx)
                {
                    gt[a][kx] = g_of(a, 0) * g[0][kx] + g_of(a, 1) * g[1][kx] + g_of(a, 2) * g[2][kx];
                }
            }
            for(size_t a = 0; a < tile; ++a)
            {
                for(size_t b = 0; b < tile; ++b)
                {
                    u[(c * filters + n) * positions + a * tile + b] = (gt[a][0] * g_of(b, 0) + gt[a][1] * g_of(b, 1) + gt[a][2] * g_of(b, 2)) * _grid.factor;
                }
            }
        }
    }
    const size_t per_position = gemm::packed_b_size(channels, filters);
    _u.assign(positions * per_position, 0.f);
    for(size_t xi = 0; xi < positions; ++xi)
    {
        gemm::pack_b(_u.data() + xi * per_position, channels, filters, [&](size_t k, size_t n) { return u[(k * filters + n) * positions + xi]; });
    }
    _bias.assign(_filters_padded, 0.f);
    for(size_t n = 0; n < filters; ++n)
    {
        const float bias = _biases != nullptr ? *reinterpret_cast<const float *>(_biases->buffer() + _biases->info()->offset_element_in_bytes(Coordinates(n))) : 0.f;
        _bias[n]         = bias * _grid.factor + _grid.base;
    }
    _weights->mark_as_unused(); // packed: the network frees the loaded copy
    _prepared = true;
}

template <size_t Tile>
void WinogradConvolution::transform_input(size_t first_tile, size_t end_tile)
{
    const ITensorInfo &in       = *_input->info();
    const size_t       channels = in.dimension(0);
    const int          width = static_cast<int>(in.dimension(1)), height = static_cast<int>(in.dimension(2));
    const size_t       sx = in.strides_in_bytes()[1], sy = in.strides_in_bytes()[2];
    const uint8_t     *src             = _input->buffer() + in.offset_first_element_in_bytes();
    const size_t       position_stride = _panels * _k_blocks * 16;
    const float32x4_t  k0 = vld1q_f32(Transforms<Tile>::c0), k1 = vld1q_f32(Transforms<Tile>::c1);
    constexpr size_t   kTile = Tile, kOut = Tile - 2;
    // The pixel stride in floats, when it is one (NHWC rows of whole floats): then interior tiles are read in place.
    const bool   strided = sx % sizeof(float) == 0 && sy % sizeof(float) == 0;
    float        tile[kTile * kTile * 4];   // a border tile (or channel tail) gathered, zeros outside
    float        rows[kTile * kTile * 4];   // after the pass along x: [i][b][4]
    for(size_t t = first_tile; t < end_tile; ++t)
    {
        const int  iy0    = static_cast<int>(t / _tiles_x * kOut) - static_cast<int>(_conv_info.pad_top());
        const int  ix0    = static_cast<int>(t % _tiles_x * kOut) - static_cast<int>(_conv_info.pad_left());
        const bool inside = strided && iy0 >= 0 && ix0 >= 0 && iy0 + static_cast<int>(kTile) <= height && ix0 + static_cast<int>(kTile) <= width;
        float     *v      = _v.data() + t / gemm::kRows * _k_blocks * 16 + t % gemm::kRows * 4;
        for(size_t block = 0; block < _k_blocks; ++block, v += 16)
        {
            const size_t c = block * 4;
            const float *d;
            size_t       dx, dy; // strides in floats
            if(inside && c + 4 <= channels)
            {
                d  = reinterpret_cast<const float *>(src + iy0 * sy + ix0 * sx) + c;
                dx = sx / sizeof(float);
                dy = sy / sizeof(float);
            }
            else
            {
                for(size_t i = 0; i < kTile; ++i)
                {
                    const int iy = iy0 + static_cast<int>(i);
                    for(size_t j = 0; j < kTile; ++j)
                    {
                        const int ix  = ix0 + static_cast<int>(j);
                        float    *out = tile + (i * kTile + j) * 4;
                        vst1q_f32(out, vdupq_n_f32(0.f));
                        if(iy < 0 || iy >= height || ix < 0 || ix >= width)
                        {
                            continue;
                        }
                        const float *p = reinterpret_cast<const float *>(src + iy * sy + ix * sx) + c;
                        if(c + 4 <= channels)
                        {
                            vst1q_f32(out, vld1q_f32(p));
                            continue;
                        }
                        for(size_t l = 0; l < 4 && c + l < channels; ++l)
                        {
                            out[l] = p[l];
                        }
                    }
                }
                d  = tile;
                dx = 4;
                dy = kTile * 4;
            }
            for(size_t i = 0; i < kTile; ++i)
            {
                Transforms<Tile>::input(d + i * dy, dx, rows + i * kTile * 4, 4, k0, k1);
            }
            for(size_t b = 0; b < kTile; ++b)
            {
                Transforms<Tile>::input(rows + b * 4, kTile * 4, v + b * position_stride, kTile * position_stride, k0, k1);
            }
        }
    }
}

void WinogradConvolution::multiply(size_t first_position, size_t end_position)
{
    const size_t channels = _input->info()->dimension(0), filters = _output->info()->dimension(0);
    const size_t per_position = gemm::packed_b_size(channels, filters), blocks = _filters_padded / gemm::kCols;
    const size_t row_stride   = _tile * _tile * _filters_padded * sizeof(float);
    const gemm::Clamp none;
    for(size_t xi = first_position; xi < end_position; ++xi)
    {
        const float *bias = xi == _tile + 1 ? _bias.data() : _zeros.data(); // position (1, 1)
        for(size_t panel = 0; panel < _panels; ++panel)
        {
            const float *a = _v.data() + (xi * _panels + panel) * _k_blocks * 16;
            const float *b = _u.data() + xi * per_position;
            float       *m = _m.data() + (panel * gemm::kRows * _tile * _tile + xi) * _filters_padded;
            gemm::micro_kernel(a, b, _k_blocks, bias, m, row_stride, none, blocks);
        }
    }
}

template <size_t Tile, bool Codes>
void WinogradConvolution::transform_output(size_t first_tile, size_t end_tile)
{
    const ITensorInfo &out     = *_output->info();
    const size_t       filters = out.dimension(0), width = out.dimension(1), height = out.dimension(2);
    const size_t       sx = out.strides_in_bytes()[1], sy = out.strides_in_bytes()[2];
    uint8_t           *dst = _output->buffer() + out.offset_first_element_in_bytes();
    const float32x4_t  lo = vdupq_n_f32(_clamp.lo), hi = vdupq_n_f32(_clamp.hi);
    const float        constants[4] = { 2.f, 4.f, 8.f, 16.f };
    const float32x4_t  k = vld1q_f32(constants);
    const bool         clamp_lo = (_clamp.flags & 1) != 0, clamp_hi = (_clamp.flags & 2) != 0;
    constexpr size_t   kTile = Tile, kOut = Tile - 2, kPositions = Tile * Tile;
    float              s[kTile * kOut * 4]; // after the pass along x: [a][x][4]
    for(size_t t = first_tile; t < end_tile; ++t)
    {
        const size_t oy0 = t / _tiles_x * kOut, ox0 = t % _tiles_x * kOut;
        const size_t rows = std::min(kOut, height - oy0), cols = std::min(kOut, width - ox0);
        const float *m_tile = _m.data() + t * kPositions * _filters_padded;
        for(size_t c = 0; c < filters; c += 4)
        {
            for(size_t a = 0; a < kTile; ++a)
            {
                float32x4_t o[kOut];
                Transforms<Tile>::output(m_tile + a * kTile * _filters_padded + c, _filters_padded, o, k);
                float *row = s + a * kOut * 4;
#pragma GCC unroll 8
                for(size_t i = 0; i < kOut; ++i)
                {
                    vst1q_f32(row + 4 * i, o[i]);
                }
            }
            const size_t lanes = std::min<size_t>(4, filters - c);
            for(size_t x = 0; x < cols; ++x)
            {
                float32x4_t o[kOut];
                Transforms<Tile>::output(s + x * 4, kOut * 4, o, k);
                uint8_t *p = dst + oy0 * sy + (ox0 + x) * sx + c * (Codes ? sizeof(uint8_t) : sizeof(float));
                if(clamp_lo)
                {
#pragma GCC unroll 8
                    for(size_t i = 0; i < kOut; ++i)
                    {
                        o[i] = vmaxq_f32(o[i], lo);
                    }
                }
                if(clamp_hi)
                {
#pragma GCC unroll 8
                    for(size_t i = 0; i < kOut; ++i)
                    {
                        o[i] = vminq_f32(o[i], hi);
                    }
                }
                if(Codes && rows == kOut && lanes == 4)
                {
#pragma GCC unroll 4
                    for(size_t i = 0; i < kOut; i += 2)
                    {
                        // One lane store per pixel (vst1.32 {dN[lane]} / st1 {vN.s}[lane] carry no alignment
                        // requirement: a channel range of a concatenation may start at any byte).
                        const uint32x2_t codes = vreinterpret_u32_u8(gemm::codes_of(o[i], o[i + 1]));
                        vst1_lane_u32(reinterpret_cast<uint32_t *>(p + i * sy), codes, 0);
                        vst1_lane_u32(reinterpret_cast<uint32_t *>(p + (i + 1) * sy), codes, 1);
                    }
                    continue;
                }
                if(Codes)
                {
                    for(size_t y = 0; y < rows; ++y, p += sy)
                    {
                        const uint32_t codes = vget_lane_u32(vreinterpret_u32_u8(gemm::codes_of(o[y], o[y])), 0);
                        std::memcpy(p, &codes, lanes);
                    }
                    continue;
                }
                if(rows == kOut && lanes == 4)
                {
#pragma GCC unroll 8
                    for(size_t i = 0; i < kOut; ++i)
                    {
                        vst1q_f32(reinterpret_cast<float *>(p + i * sy), o[i]);
                    }
                    continue;
                }
                for(size_t y = 0; y < rows; ++y, p += sy)
                {
                    const float32x4_t value = o[y];
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
    if(_tile == 8)
    {
        split(_tiles, "WinogradConvolution input", [this](size_t first, size_t end) { transform_input<8>(first, end); });
    }
    else
    {
        split(_tiles, "WinogradConvolution input", [this](size_t first, size_t end) { transform_input<6>(first, end); });
    }
    split(_tile * _tile, "WinogradConvolution products", [this](size_t first, size_t end) { multiply(first, end); });
    const char *tag = "WinogradConvolution output";
    if(_tile == 8)
    {
        _grid.codes ? split(_tiles, tag, [this](size_t first, size_t end) { transform_output<8, true>(first, end); })
                    : split(_tiles, tag, [this](size_t first, size_t end) { transform_output<8, false>(first, end); });
    }
    else
    {
        _grid.codes ? split(_tiles, tag, [this](size_t first, size_t end) { transform_output<6, true>(first, end); })
                    : split(_tiles, tag, [this](size_t first, size_t end) { transform_output<6, false>(first, end); });
    }
}
} // namespace engine
