#include "resize.h"

#include "engine.h"

#include "arm_compute/core/Error.h"
#include "arm_compute/core/Helpers.h"

#include <vector>

using namespace arm_compute;

namespace engine
{
namespace
{
/** Element strides (in floats) of a tensor's channel, row and column, whatever its layout. */
struct Strides
{
    size_t c, y, x;
    size_t channels, height, width;
};

Strides strides_of(const ITensorInfo &info)
{
    const DataLayout layout = info.data_layout();
    const size_t     ic = get_data_layout_dimension_index(layout, DataLayoutDimension::CHANNEL);
    const size_t     iy = get_data_layout_dimension_index(layout, DataLayoutDimension::HEIGHT);
    const size_t     ix = get_data_layout_dimension_index(layout, DataLayoutDimension::WIDTH);
    const auto      &s  = info.strides_in_bytes();
    return Strides{ s[ic] / sizeof(float), s[iy] / sizeof(float), s[ix] / sizeof(float), info.dimension(ic), info.dimension(iy), info.dimension(ix) };
}

Status check_axis(const std::vector<int> &first, const std::vector<float> &weights, unsigned int k, size_t in, size_t out, const char *what)
{
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(first.size() != out, what);
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(weights.size() != out * k, what);
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(k == 0 || k > in, what);
    for(int f : first)
    {
        ARM_COMPUTE_RETURN_ERROR_ON_MSG(f < -1 || (f >= 0 && static_cast<size_t>(f) + k > in), what);
    }
    return Status{};
}
} // namespace

Status Resize::validate(const ITensorInfo *input, const ITensorInfo *output, const ResizeTables &tables)
{
    ARM_COMPUTE_RETURN_ERROR_ON_NULLPTR(input, output);
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_type() != DataType::F32 || output->data_type() != DataType::F32, "float32 only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_layout() != output->data_layout(), "input and output in one layout");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->num_dimensions() > 3 || output->num_dimensions() > 3, "one image at a time");
    const Strides in = strides_of(*input), out = strides_of(*output);
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(in.channels != out.channels, "input and output channels differ");
    ARM_COMPUTE_RETURN_ON_ERROR(check_axis(tables.first_y, tables.weight_y, tables.ky, in.height, out.height, "row taps do not fit the sizes"));
    ARM_COMPUTE_RETURN_ON_ERROR(check_axis(tables.first_x, tables.weight_x, tables.kx, in.width, out.width, "column taps do not fit the sizes"));
    return Status{};
}

void Resize::configure(ITensor *input, ITensor *output, const ResizeTables &tables)
{
    ARM_COMPUTE_ERROR_THROW_ON(validate(input->info(), output->info(), tables));
    _input  = input;
    _output = output;
    _tables = tables;
}

void Resize::channels(size_t first, size_t end) const
{
    const Strides      in = strides_of(*_input->info()), out = strides_of(*_output->info());
    const float       *src = reinterpret_cast<const float *>(_input->buffer() + _input->info()->offset_first_element_in_bytes());
    float             *dst = reinterpret_cast<float *>(_output->buffer() + _output->info()->offset_first_element_in_bytes());
    const ResizeTables &t  = _tables;
    std::vector<float> row(in.width);
    for(size_t c = first; c < end; ++c)
    {
        for(size_t oy = 0; oy < out.height; ++oy)
        {
            float *o  = dst + c * out.c + oy * out.y;
            const int fy = t.first_y[oy];
            if(fy < 0)
            {
                for(size_t ox = 0; ox < out.width; ++ox)
                {
                    o[ox * out.x] = t.extrapolation_value;
                }
                continue;
            }
            // The weighted sum of this output row's input rows.
            const float *wy = &t.weight_y[oy * t.ky];
            for(size_t x = 0; x < in.width; ++x)
            {
                row[x] = 0.f;
            }
            for(unsigned int k = 0; k < t.ky; ++k)
            {
                const float  w = wy[k];
                const float *s = src + c * in.c + (fy + k) * in.y;
                if(w != 0.f)
                {
                    for(size_t x = 0; x < in.width; ++x)
                    {
                        row[x] += w * s[x * in.x];
                    }
                }
            }
            for(size_t ox = 0; ox < out.width; ++ox)
            {
                const int fx = t.first_x[ox];
                if(fx < 0)
                {
                    o[ox * out.x] = t.extrapolation_value;
                    continue;
                }
                const float *wx  = &t.weight_x[ox * t.kx];
                float        sum = 0.f;
                for(unsigned int k = 0; k < t.kx; ++k)
                {
                    sum += wx[k] * row[fx + k];
                }
                o[ox * out.x] = sum;
            }
        }
    }
}

void Resize::run()
{
    split(strides_of(*_input->info()).channels, "Resize", [this](size_t first, size_t end) { channels(first, end); });
}
} // namespace engine
