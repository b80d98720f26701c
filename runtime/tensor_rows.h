// engine::for_each_row: the one walk over the rows of element-by-element kernels (engine::Quantization,
// engine::Dequantization, engine::QuantizedAddition), for any number of tensors of one shape, up to 4-D, each at
// its own strides and element size (an output may be a channel range of a concatenated tensor, an input padded
// by an ACL kernel that reads it later). Runs that lie back to back in every tensor are merged, so that a kernel's
// per-row cost is paid only where some tensor has gaps: the dense case, the common one, is one call of the row
// function. A dimension of one merges at any stride: ACL leaves the strides past a tensor's dimensions at 0, so
// QuantizedAddition's former test of all four strides never held for the generated code's 3-D tensors (one call
// per row, in NHWC per pixel; on tests/test_int8.py's 8 x 9 x 11 residual addition 33,129 / 35,200 guest
// instructions in NHWC / NCHW, now 7,935 in one call).
#pragma once

#include "arm_compute/core/ITensor.h"
#include "arm_compute/core/Types.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace engine
{
namespace rows_detail
{
template <typename Tensor>
using Pointer = typename std::conditional<std::is_const<Tensor>::value, const uint8_t *, uint8_t *>::type;

template <typename... Tensors, typename Row, size_t... I>
inline void call(Row &row, const std::array<uint8_t *, sizeof...(Tensors)> &at, size_t n, std::index_sequence<I...>)
{
    row(static_cast<Pointer<Tensors>>(at[I])..., n);
}
} // namespace rows_detail

/** Calls row(p0, p1, ..., n) with byte pointers to n values lying back to back in each of the tensors (given in
 *  that order; a pointer to const for a const tensor), over every value of the tensors: all of the same shape, at
 *  most 4-D, each value row (dimension 0) at stride its element size, as ACL allocates them. Dimensions are merged
 *  into one run from the first while every tensor is packed along them (its stride is its own element size times
 *  the values before it; a dimension of one is merged at any stride): all tensors dense is one call, rows packed
 *  but planes apart one call per plane, otherwise one per row. */
template <typename Row, typename... Tensors>
void for_each_row(Row &&row, Tensors &... tensors)
{
    constexpr size_t                         count = sizeof...(Tensors);
    const arm_compute::ITensor              *tensor[count]{ &tensors... };
    std::array<uint8_t *, count>             at;
    std::array<size_t, count>                element;
    std::array<std::array<size_t, 4>, count> stride; // read once: the walk below makes no virtual call
    for(size_t t = 0; t < count; ++t)
    {
        const arm_compute::ITensorInfo &info = *tensor[t]->info();
        const arm_compute::Strides     &s    = info.strides_in_bytes();
        at[t]                                = tensor[t]->buffer() + info.offset_first_element_in_bytes();
        element[t]                           = info.element_size();
        for(size_t d = 0; d < 4; ++d)
        {
            stride[t][d] = s[d];
        }
    }
    const arm_compute::TensorShape &shape = tensor[0]->info()->tensor_shape();
    size_t                          run   = shape[0], merged = 1;
    for(; merged < 4; ++merged)
    {
        bool packed = true;
        for(size_t t = 0; t < count && shape[merged] != 1; ++t)
        {
            packed = packed && stride[t][merged] == element[t] * run;
        }
        if(!packed)
        {
            break;
        }
        run *= shape[merged];
    }
    const auto   extent = [&](size_t d) { return d < merged ? size_t(1) : shape[d]; };
    const size_t planes = extent(2), rows = extent(1);
    for(size_t w = extent(3); w > 0; --w)
    {
        std::array<uint8_t *, count> plane = at;
        for(size_t z = planes; z > 0; --z)
        {
            std::array<uint8_t *, count> line = plane;
            for(size_t y = rows; y > 0; --y)
            {
                rows_detail::call<Tensors...>(row, line, run, std::index_sequence_for<Tensors...>{});
                for(size_t t = 0; t < count; ++t)
                {
                    line[t] += stride[t][1];
                }
            }
            for(size_t t = 0; t < count; ++t)
            {
                plane[t] += stride[t][2];
            }
        }
        for(size_t t = 0; t < count; ++t)
        {
            at[t] += stride[t][3];
        }
    }
}
} // namespace engine
