#include "packed_gemm_convolution.h"

#include "copy_floats.h"

#include "arm_compute/core/Error.h"
#include "arm_compute/core/Helpers.h"
#include "arm_compute/runtime/NEON/NEScheduler.h"

#include <algorithm>
#include <arm_neon.h>
#include <cstring>

using namespace arm_compute;

namespace engine
{
namespace
{
/** Packs 4 input rows at a fixed stride (a 1x1 convolution's pixels) into a panel, 4 floats of each in turn. A
 *  function of its own so that its loop keeps its registers whatever the caller holds live. */
__attribute__((noinline)) void pack_rows(float *packed, const uint8_t *from, size_t in_sx, size_t k_blocks)
{
    const float *r0 = reinterpret_cast<const float *>(from), *r1 = reinterpret_cast<const float *>(from + in_sx);
    const float *r2 = reinterpret_cast<const float *>(from + 2 * in_sx), *r3 = reinterpret_cast<const float *>(from + 3 * in_sx);
    for(size_t kb = 0; kb < k_blocks; ++kb, packed += 16, r0 += 4, r1 += 4, r2 += 4, r3 += 4)
    {
        const float32x4_t v0 = vld1q_f32(r0), v1 = vld1q_f32(r1), v2 = vld1q_f32(r2), v3 = vld1q_f32(r3);
        vst1q_f32(packed, v0);
        vst1q_f32(packed + 4, v1);
        vst1q_f32(packed + 8, v2);
        vst1q_f32(packed + 12, v3);
    }
}
} // namespace

PackedGemmConvolution::PackedGemmConvolution(std::shared_ptr<IMemoryManager> memory_manager)
{
    (void)memory_manager;
}

Status PackedGemmConvolution::validate(const ITensorInfo *input, const ITensorInfo *weights, const ITensorInfo *biases, const ITensorInfo *output,
                                       const PadStrideInfo &conv_info, const ActivationLayerInfo &act)
{
    return gemm::validate_nhwc_convolution(input, weights, biases, output, conv_info, act, false, true);
}

void PackedGemmConvolution::configure(ITensor *input, ITensor *weights, ITensor *biases, ITensor *output, const PadStrideInfo &conv_info, const ActivationLayerInfo &act)
{
    ARM_COMPUTE_ERROR_THROW_ON(validate(input->info(), weights->info(), biases != nullptr ? biases->info() : nullptr, output->info(), conv_info, act));
    _input     = input;
    _weights   = weights;
    _biases    = biases;
    _output    = output;
    _conv_info = conv_info;
    _grid      = gemm::output_grid(*output->info());
    _clamp     = gemm::on_grid(gemm::clamp_of(act), _grid);
    _kernel_w  = weights->info()->dimension(1);
    _kernel_h  = weights->info()->dimension(2);
    _k         = _kernel_w * _kernel_h * input->info()->dimension(0);
    _k_blocks  = gemm::round_up(_k, 4) / 4;
    _in_place  = _kernel_w == 1 && _kernel_h == 1 && conv_info.stride() == std::make_pair(1U, 1U) && !conv_info.has_padding() && _k % 4 == 0;
}

void PackedGemmConvolution::prepare()
{
    if(_prepared)
    {
        return;
    }
    const ITensorInfo &w        = *_weights->info();
    const size_t       channels = w.dimension(0), filters = w.dimension(3);
    const uint8_t     *base     = _weights->buffer();
    _packed_weights.assign(gemm::packed_b_size(_k, filters), 0.f);
    gemm::pack_b(_packed_weights.data(), _k, filters, [&](size_t k, size_t n) {
        const size_t c = k % channels, tap = k / channels;
        return *reinterpret_cast<const float *>(base + w.offset_element_in_bytes(Coordinates(c, tap % _kernel_w, tap / _kernel_w, n))) * _grid.factor;
    });
    _bias.assign(gemm::round_up(filters, gemm::kCols), 0.f);
    for(size_t n = 0; n < filters; ++n)
    {
        const float bias = _biases != nullptr ? *reinterpret_cast<const float *>(_biases->buffer() + _biases->info()->offset_element_in_bytes(Coordinates(n))) : 0.f;
        _bias[n]         = bias * _grid.factor + _grid.base;
    }
    _weights->mark_as_unused(); // packed: the network frees the loaded copy
    _prepared = true;
}

template <typename Out>
void PackedGemmConvolution::panels(size_t first, size_t end, std::vector<float> &buffer) const
{
    const ITensorInfo &in = *_input->info(), &out = *_output->info();
    const size_t channels = in.dimension(0), in_w = in.dimension(1), in_h = in.dimension(2);
    const size_t filters = out.dimension(0), out_w = out.dimension(1), pixels = out_w * out.dimension(2);
    const size_t in_sx = in.strides_in_bytes()[1], in_sy = in.strides_in_bytes()[2];
    const size_t out_sx = out.strides_in_bytes()[1], out_sy = out.strides_in_bytes()[2];
    const uint8_t *src = _input->buffer() + in.offset_first_element_in_bytes();
    uint8_t       *dst = _output->buffer() + out.offset_first_element_in_bytes();
    const int stride_x = _conv_info.stride().first, stride_y = _conv_info.stride().second;
    const int pad_x = _conv_info.pad_left(), pad_y = _conv_info.pad_top();
    const size_t k4 = _k_blocks * 4, blocks = gemm::round_up(filters, gemm::kCols) / gemm::kCols;
    const size_t whole_blocks = filters / gemm::kCols;

    const bool   dense = in_sx == channels * sizeof(float);
    const size_t span  = _kernel_w * channels;

    float *panel = buffer.data();
    float *rows  = panel + k4 * gemm::kRows; // gathered im2col rows, k4 floats each
    // A 1x1 convolution over planes stored row after row (input and output: pixel p at p x the pixel stride; a
    // channel view of a wider tensor included): whole panels need no coordinates, 4 input rows at a fixed stride
    // are packed and the 4 output rows are evenly spaced.
    // Work items are (panel, block of kCols filters) pairs, panel after panel: [first, end) may begin and end
    // inside a panel, so that threads get equal shares even when the panels do not divide evenly among them.
    const size_t p_first = first / blocks, p_end = (end + blocks - 1) / blocks;
    const size_t first_bb = first - p_first * blocks, last_be = end - (p_end - 1) * blocks;
    // The blocks [bb, be) of panel p that this call computes: all of them but in its first and last panels.
    const auto block_range = [&](size_t p, size_t &bb, size_t &be) {
        bb = p == p_first ? first_bb : 0;
        be = p + 1 == p_end ? last_be : blocks;
    };
    size_t p = p_first;
    // A 1x1 convolution over planes stored row after row (input and output: pixel p at p x the pixel stride; a
    // channel view of a wider tensor included): whole panels need no coordinates, 4 input rows at a fixed stride
    // are packed and the 4 output rows are evenly spaced.
    if(_in_place && in_sy == in_w * in_sx && out_sy == out_w * out_sx && whole_blocks > 0)
    {
        const size_t full = std::min(p_end, pixels / gemm::kRows);
        for(; p < full; ++p)
        {
            size_t bb = 0, be = 0;
            block_range(p, bb, be);
            pack_rows(panel, src + p * gemm::kRows * in_sx, in_sx, _k_blocks);
            Out         *out_row = reinterpret_cast<Out *>(dst + p * gemm::kRows * out_sx);
            const size_t whole_end = std::min(be, whole_blocks);
            if(bb < whole_end)
            {
                gemm::micro_kernel(panel, _packed_weights.data() + bb * k4 * gemm::kCols, _k_blocks, _bias.data() + bb * gemm::kCols, out_row + bb * gemm::kCols, out_sx,
                                   _clamp, whole_end - bb);
            }
            if(whole_blocks < be) // the last, partial block of filters
            {
                const size_t column = whole_blocks * gemm::kCols;
                Out *at[gemm::kRows] = { out_row + column, reinterpret_cast<Out *>(reinterpret_cast<uint8_t *>(out_row) + out_sx) + column,
                                         reinterpret_cast<Out *>(reinterpret_cast<uint8_t *>(out_row) + 2 * out_sx) + column,
                                         reinterpret_cast<Out *>(reinterpret_cast<uint8_t *>(out_row) + 3 * out_sx) + column };
                gemm::micro_kernel_partial(panel, _packed_weights.data() + whole_blocks * k4 * gemm::kCols, _k_blocks, _bias.data() + column, at,
                                           gemm::kRows, filters - column, _clamp);
            }
        }
        if(p >= p_end)
        {
            return;
        }
    }
    // The next pixel's coordinates, advanced pixel by pixel (armv7-a has no integer division instruction).
    size_t next_x = p * gemm::kRows % out_w, next_y = p * gemm::kRows / out_w, ox = 0, oy = 0;
    for(; p < p_end; ++p)
    {
        const float *row[gemm::kRows];
        Out         *out_row[gemm::kRows];
        size_t       valid = 0;
        for(size_t r = 0; r < gemm::kRows; ++r)
        {
            if(p * gemm::kRows + r < pixels) // past the last pixel: the last one again, never stored
            {
                ++valid;
                ox = next_x, oy = next_y;
                if(++next_x == out_w)
                {
                    next_x = 0, ++next_y;
                }
            }
            out_row[r]      = reinterpret_cast<Out *>(dst + oy * out_sy + ox * out_sx);
            if(_in_place)
            {
                row[r] = reinterpret_cast<const float *>(src + oy * in_sy + ox * in_sx);
                continue;
            }
            float *gathered = rows + r * k4;
            row[r]          = gathered;
            const int ix0 = static_cast<int>(ox) * stride_x - pad_x;
            const int iy0 = static_cast<int>(oy) * stride_y - pad_y;
            if(dense && ix0 >= 0 && iy0 >= 0 && ix0 + static_cast<int>(_kernel_w) <= static_cast<int>(in_w)
               && iy0 + static_cast<int>(_kernel_h) <= static_cast<int>(in_h))
            {
                // The whole window inside: kernel height runs of kernel width x Cin floats (e.g. conv1: 3 x 9).
                const uint8_t *from = src + iy0 * in_sy + ix0 * in_sx;
                for(size_t ky = 0; ky < _kernel_h; ++ky, from += in_sy, gathered += span)
                {
                    copy_floats(gathered, reinterpret_cast<const float *>(from), span);
                }
                continue;
            }
            for(size_t ky = 0; ky < _kernel_h; ++ky)
            {
                const int iy = static_cast<int>(oy) * stride_y - pad_y + static_cast<int>(ky);
                if(dense && iy >= 0 && iy < static_cast<int>(in_h) && ix0 >= 0 && ix0 + static_cast<int>(_kernel_w) <= static_cast<int>(in_w))
                {
                    // The window's row is kernel width x Cin floats back to back: vector copies.
                    const float *from = reinterpret_cast<const float *>(src + iy * in_sy + ix0 * in_sx);
                    size_t       i    = 0;
                    for(; i + 4 <= span; i += 4)
                    {
                        vst1q_f32(gathered + i, vld1q_f32(from + i));
                    }
                    for(; i < span; ++i)
                    {
                        gathered[i] = from[i];
                    }
                    gathered += span;
                    continue;
                }
                for(size_t kx = 0; kx < _kernel_w; ++kx, gathered += channels)
                {
                    const int ix = static_cast<int>(ox) * stride_x - pad_x + static_cast<int>(kx);
                    if(iy < 0 || iy >= static_cast<int>(in_h) || ix < 0 || ix >= static_cast<int>(in_w))
                    {
                        std::fill(gathered, gathered + channels, 0.f);
                        continue;
                    }
                    const float *pixel_in = reinterpret_cast<const float *>(src + iy * in_sy + ix * in_sx);
                    for(size_t c = 0; c < channels; ++c)
                    {
                        gathered[c] = pixel_in[c];
                    }
                }
            }
            // rows[k, k4) stay zero from the buffer's allocation: nothing writes there
        }
        float *packed = panel;
        for(size_t kb = 0; kb < _k_blocks; ++kb, packed += 16)
        {
            vst1q_f32(packed, vld1q_f32(row[0] + 4 * kb));
            vst1q_f32(packed + 4, vld1q_f32(row[1] + 4 * kb));
            vst1q_f32(packed + 8, vld1q_f32(row[2] + 4 * kb));
            vst1q_f32(packed + 12, vld1q_f32(row[3] + 4 * kb));
        }
        const ptrdiff_t step   = reinterpret_cast<uint8_t *>(out_row[1]) - reinterpret_cast<uint8_t *>(out_row[0]);
        const bool      evenly = valid == gemm::kRows && step > 0 && reinterpret_cast<uint8_t *>(out_row[2]) - reinterpret_cast<uint8_t *>(out_row[1]) == step
                            && reinterpret_cast<uint8_t *>(out_row[3]) - reinterpret_cast<uint8_t *>(out_row[2]) == step;
        size_t bb = 0, be = 0;
        block_range(p, bb, be);
        const float *b     = bb == 0 ? _packed_weights.data() : _packed_weights.data() + bb * k4 * gemm::kCols;
        size_t       block = bb;
        const size_t whole_end = std::min(be, whole_blocks);
        if(evenly && block < whole_end) // every whole block of 8 columns in one call, stored from the registers
        {
            gemm::micro_kernel(panel, b, _k_blocks, _bias.data() + block * gemm::kCols, out_row[0] + block * gemm::kCols, static_cast<size_t>(step), _clamp,
                               whole_end - block);
            b += (whole_end - block) * k4 * gemm::kCols;
            block = whole_end;
        }
        for(; block < be; ++block, b += k4 * gemm::kCols)
        {
            const size_t column = block * gemm::kCols, cols = std::min(gemm::kCols, filters - column);
            Out *at[gemm::kRows] = { out_row[0] + column, out_row[1] + column, out_row[2] + column, out_row[3] + column };
            gemm::micro_kernel_partial(panel, b, _k_blocks, _bias.data() + column, at, valid, cols, _clamp);
        }
    }
}

void PackedGemmConvolution::run()
{
    prepare();
    const ITensorInfo &out    = *_output->info();
    const size_t       panels_count = gemm::round_up(out.dimension(1) * out.dimension(2), gemm::kRows) / gemm::kRows;
    const size_t       blocks = gemm::round_up(out.dimension(0), gemm::kCols) / gemm::kCols;
    // Equal shares of the (panel, filter block) pairs: e.g. SqueezeNet's conv10 has 49 panels of 125 blocks, which
    // whole panels would give 13 : 12 : 12 : 12 over four threads.
    const size_t       count  = panels_count * blocks;
    const size_t       split  = std::max<size_t>(1, std::min<size_t>(NEScheduler::get().num_threads(), panels_count));
    const size_t       floats = _k_blocks * 4 * gemm::kRows * (_in_place ? 1 : 2);
    _buffers.resize(split);
    std::vector<IScheduler::Workload> workloads;
    for(size_t t = 0; t < split; ++t)
    {
        _buffers[t].resize(floats);
        const size_t first = count * t / split, end = count * (t + 1) / split;
        std::vector<float> *buffer = &_buffers[t];
        if(_grid.codes)
        {
            workloads.emplace_back([this, first, end, buffer](const ThreadInfo &) { panels<uint8_t>(first, end, *buffer); });
        }
        else
        {
            workloads.emplace_back([this, first, end, buffer](const ThreadInfo &) { panels<float>(first, end, *buffer); });
        }
    }
    NEScheduler::get().run_tagged_workloads(workloads, "PackedGemmConvolution");
}
} // namespace engine
