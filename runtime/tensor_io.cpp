#include "tensor_io.h"

#include "engine.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace engine
{
namespace
{
/** Calls fn(row_pointer, dense_offset) for every dimension-0 row of the tensor (up to 4 dimensions). */
template <typename Fn>
void for_each_row(const arm_compute::ITensor &tensor, Fn fn)
{
    const arm_compute::TensorShape &shape = tensor.info()->tensor_shape();
    if(shape.num_dimensions() > 4)
    {
        throw Error("tensor with more than 4 dimensions");
    }
    const size_t row = shape[0];
    size_t       dense = 0;
    for(size_t w = 0; w < shape[3]; ++w)
    {
        for(size_t z = 0; z < shape[2]; ++z)
        {
            for(size_t y = 0; y < shape[1]; ++y)
            {
                const arm_compute::Coordinates at(0, y, z, w);
                fn(tensor.buffer() + tensor.info()->offset_element_in_bytes(at), dense);
                dense += row;
            }
        }
    }
}
} // namespace

void copy_into(arm_compute::ITensor &tensor, const float *data)
{
    const size_t row_bytes = tensor.info()->tensor_shape()[0] * sizeof(float);
    for_each_row(tensor, [&](uint8_t *row, size_t offset) { std::memcpy(row, data + offset, row_bytes); });
}

void copy_bytes_into(arm_compute::ITensor &tensor, const uint8_t *data)
{
    const size_t element   = tensor.info()->element_size();
    const size_t row_bytes = tensor.info()->tensor_shape()[0] * element;
    for_each_row(tensor, [&](uint8_t *row, size_t offset) { std::memcpy(row, data + offset * element, row_bytes); });
}

std::vector<float> copy_out(const arm_compute::ITensor &tensor)
{
    std::vector<float> values(tensor.info()->tensor_shape().total_size());
    const size_t       row_bytes = tensor.info()->tensor_shape()[0] * sizeof(float);
    for_each_row(tensor, [&](const uint8_t *row, size_t offset) { std::memcpy(values.data() + offset, row, row_bytes); });
    return values;
}

std::vector<float> read_floats(const std::string &path, size_t count, const char *what)
{
    std::ifstream file(path, std::ios::binary | std::ios::ate);
    if(!file)
    {
        throw Error(path + ": cannot open " + what + ": " + std::strerror(errno));
    }
    const auto size = static_cast<size_t>(file.tellg());
    if(size == 0 || size % (count * sizeof(float)) != 0)
    {
        throw Error(path + ": " + what + " has " + std::to_string(size) + " bytes; the network expects " + std::to_string(count) + " float32 values (" + std::to_string(count * sizeof(float)) + " bytes) per input");
    }
    std::vector<float> values(size / sizeof(float));
    file.seekg(0);
    file.read(reinterpret_cast<char *>(values.data()), static_cast<std::streamsize>(size));
    return values;
}

void write_floats(const std::string &path, const std::vector<float> &values)
{
    // Written under a temporary name and renamed, so a reader never sees half a result.
    const std::string partial = path + ".partial";
    {
        std::ofstream file(partial, std::ios::binary | std::ios::trunc);
        file.write(reinterpret_cast<const char *>(values.data()), static_cast<std::streamsize>(values.size() * sizeof(float)));
        if(!file.flush())
        {
            throw Error(path + ": cannot write the output: " + std::strerror(errno));
        }
    }
    if(std::rename(partial.c_str(), path.c_str()) != 0)
    {
        throw Error(path + ": cannot write the output: " + std::strerror(errno));
    }
}
} // namespace engine
