// engine::for_each_row: the one walk over the rows of element-by-element kernels (engine::Quantization,
// engine::Dequantization, engine::QuantizedAddition), for any number of tensors of one shape, up to 4-D, each at
// its own strides and element size (an output may be a channel range of a concatenated tensor, an input padded
// by an ACL kernel that reads it later). Runs that lie back to back in every tensor are merged, so that a kernel's
// per-row cost is paid only where some tensor has gaps: the dense case, the common one, is one call of the row
// function.
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
    constexpr size_t                                   count = sizeof...(Tensors);
    const std::array<const arm_compute::ITensorInfo *, count> info{ { tensors.info()... } };
    const arm_compute::TensorShape                    &shape = info[0]->tensor_shape();
    size_t                                             run   = shape[0], merged = 1;
    for(; merged < 4; ++merged)
    {
        bool packed = true;
        for(size_t t = 0; t < count && shape[merged] != 1; ++t)
        {
            packed = packed && info[t]->strides_in_bytes()[merged] == info[t]->element_size() * run;
        }
        if(!packed)
        {
            break;
        }
        run *= shape[merged];
    }
    std::array<uint8_t *, count> at{ { (tensors.buffer() + tensors.info()->offset_first_element_in_bytes())... } };
    const auto                   extent  = [&](size_t d) { return d < merged ? size_t(1) : shape[d]; };
    const auto                   advance = [&](std::array<uint8_t *, count> &p, size_t d) {
        for(size_t t = 0; t < count; ++t)
        {
            p[t] += info[t]->strides_in_bytes()[d];
        }
    };
    const size_t planes = extent(2), rows = extent(1);
    for(size_t w = extent(3); w > 0; --w, advance(at, 3))
    {
        std::array<uint8_t *, count> plane = at;
        for(size_t z = planes; z > 0; --z, advance(plane, 2))
        {
            std::array<uint8_t *, count> line = plane;
            for(size_t y = rows; y > 0; --y, advance(line, 1))
            {
                rows_detail::call<Tensors...>(row, line, run, std::index_sequence_for<Tensors...>{});
            }
        }
    }
}
} // namespace engine
