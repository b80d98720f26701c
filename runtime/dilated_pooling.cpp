#include "dilated_pooling.h"

#include "engine.h"

#include "arm_compute/core/Error.h"
#include "arm_compute/core/Helpers.h"

#include <algorithm>
#include <limits>

using namespace arm_compute;

namespace engine
{
namespace
{
/** Element strides (in floats) of a tensor's channel, row and column, and its sizes, whatever its layout. */
struct Geometry
{
    size_t c, y, x;
    size_t channels, height, width;
};

Geometry geometry_of(const ITensorInfo &info)
{
    const DataLayout layout = info.data_layout();
    const size_t     ic = get_data_layout_dimension_index(layout, DataLayoutDimension::CHANNEL);
    const size_t     iy = get_data_layout_dimension_index(layout, DataLayoutDimension::HEIGHT);
    const size_t     ix = get_data_layout_dimension_index(layout, DataLayoutDimension::WIDTH);
    const auto      &s  = info.strides_in_bytes();
    return Geometry{ s[ic] / sizeof(float), s[iy] / sizeof(float), s[ix] / sizeof(float), info.dimension(ic), info.dimension(iy), info.dimension(ix) };
}
} // namespace

Status DilatedPooling::validate(const ITensorInfo *input, const ITensorInfo *output, const DilatedPoolingInfo &info)
{
    ARM_COMPUTE_RETURN_ERROR_ON_NULLPTR(input, output);
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_type() != DataType::F32 || output->data_type() != DataType::F32, "float32 only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_layout() != output->data_layout(), "input and output in one layout");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->num_dimensions() > 3 || output->num_dimensions() > 3, "one image at a time");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(info.kernel_x == 0 || info.kernel_y == 0 || info.stride_x == 0 || info.stride_y == 0 || info.dilation_x == 0 || info.dilation_y == 0,
                                    "kernel, stride and dilation must be positive");
    const Geometry in = geometry_of(*input), out = geometry_of(*output);
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(in.channels != out.channels, "input and output channels differ");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(out.height == 0 || out.width == 0, "empty output");
    // Every window must start within the input or its top/left padding.
    ARM_COMPUTE_RETURN_ERROR_ON_MSG((out.height - 1) * info.stride_y >= in.height + info.pad_top + info.pad_bottom
                                        || (out.width - 1) * info.stride_x >= in.width + info.pad_left + info.pad_right,
                                    "the output is larger than the windows the input has");
    return Status{};
}

void DilatedPooling::configure(ITensor *input, ITensor *output, const DilatedPoolingInfo &info)
{
    ARM_COMPUTE_ERROR_THROW_ON(validate(input->info(), output->info(), info));
    _input  = input;
    _output = output;
    _info   = info;
}

void DilatedPooling::channels(size_t first, size_t end) const
{
    const Geometry            in = geometry_of(*_input->info()), out = geometry_of(*_output->info());
    const float              *src = reinterpret_cast<const float *>(_input->buffer() + _input->info()->offset_first_element_in_bytes());
    float                    *dst = reinterpret_cast<float *>(_output->buffer() + _output->info()->offset_first_element_in_bytes());
    const DilatedPoolingInfo &p   = _info;
    const long                h = static_cast<long>(in.height), w = static_cast<long>(in.width);
    for(size_t c = first; c < end; ++c)
    {
        for(size_t oy = 0; oy < out.height; ++oy)
        {
            for(size_t ox = 0; ox < out.width; ++ox)
            {
                const long y0 = static_cast<long>(oy * p.stride_y) - static_cast<long>(p.pad_top);
                const long x0 = static_cast<long>(ox * p.stride_x) - static_cast<long>(p.pad_left);
                float      best = -std::numeric_limits<float>::infinity(), sum = 0.f;
                size_t     counted = 0;
                for(unsigned int i = 0; i < p.kernel_y; ++i)
                {
                    const long y = y0 + static_cast<long>(i * p.dilation_y);
                    for(unsigned int j = 0; j < p.kernel_x; ++j)
                    {
                        const long x = x0 + static_cast<long>(j * p.dilation_x);
                        if(y >= 0 && y < h && x >= 0 && x < w)
                        {
                            const float v = src[c * in.c + y * in.y + x * in.x];
                            best          = std::max(best, v);
                            sum += v;
                            ++counted;
                        }
                        else if(p.count_include_pad && y >= -static_cast<long>(p.pad_top) && y < h + static_cast<long>(p.pad_bottom)
                                && x >= -static_cast<long>(p.pad_left) && x < w + static_cast<long>(p.pad_right))
                        {
                            ++counted; // a declared padding cell: a zero in the mean
                        }
                    }
                }
                dst[c * out.c + oy * out.y + ox * out.x] = p.max ? best : (counted > 0 ? sum / static_cast<float>(counted) : 0.f);
            }
        }
    }
}

void DilatedPooling::run()
{
    split(geometry_of(*_input->info()).channels, "DilatedPooling", [this](size_t first, size_t end) { channels(first, end); });
}
} // namespace engine
