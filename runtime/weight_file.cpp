#include "weight_file.h"

#include "tensor_io.h"

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace engine
{
namespace
{
uint32_t crc32(const uint8_t *data, size_t size)
{
    static const std::array<uint32_t, 256> table = [] {
        std::array<uint32_t, 256> t{};
        for(uint32_t i = 0; i < 256; ++i)
        {
            uint32_t c = i;
            for(int k = 0; k < 8; ++k)
            {
                c = (c & 1U) ? 0xEDB88320U ^ (c >> 1) : c >> 1;
            }
            t[i] = c;
        }
        return t;
    }();
    uint32_t crc = 0xFFFFFFFFU;
    for(size_t i = 0; i < size; ++i)
    {
        crc = table[(crc ^ data[i]) & 0xFFU] ^ (crc >> 8);
    }
    return crc ^ 0xFFFFFFFFU;
}

std::string dims_text(const std::vector<unsigned int> &dims)
{
    std::string text = "[";
    for(size_t i = 0; i < dims.size(); ++i)
    {
        text += (i ? "," : "") + std::to_string(dims[i]);
    }
    return text + "]";
}

/** The weight file's element type code of a tensor, as neoncc/weights/engine_format.py writes it. */
uint32_t element_type(arm_compute::DataType type)
{
    switch(type)
    {
        case arm_compute::DataType::F32:
            return 0;
        case arm_compute::DataType::QSYMM8_PER_CHANNEL:
        case arm_compute::DataType::QSYMM8:
        case arm_compute::DataType::QASYMM8_SIGNED:
            return 1;
        case arm_compute::DataType::S32:
            return 2;
        case arm_compute::DataType::QASYMM8:
            return 3;
        default:
            throw Error("a weight tensor of a data type the weight file cannot hold");
    }
}

const char *element_name(uint32_t type)
{
    static const char *const names[] = { "float32", "int8", "int32", "uint8" };
    return type < 4 ? names[type] : "unknown";
}

size_t tensor_bytes(const arm_compute::ITensor &tensor)
{
    return tensor.info()->tensor_shape().total_size() * tensor.info()->element_size();
}

/** Reads fields from the file image, failing with the file name when it runs out. */
class Reader
{
public:
    Reader(const std::string &path, const std::vector<uint8_t> &bytes, size_t end)
        : _path(path), _bytes(bytes), _end(end)
    {
    }
    const uint8_t *take(size_t size, const char *what)
    {
        if(size > _end - _pos)
        {
            throw Error(_path + ": truncated weight file (ends inside " + what + ")");
        }
        const uint8_t *at = _bytes.data() + _pos;
        _pos += size;
        return at;
    }
    uint32_t u32(const char *what)
    {
        uint32_t value;
        std::memcpy(&value, take(sizeof(value), what), sizeof(value));
        return value;
    }
    size_t remaining() const
    {
        return _end - _pos;
    }

private:
    const std::string          &_path;
    const std::vector<uint8_t> &_bytes;
    size_t                      _end;
    size_t                      _pos{ 0 };
};
} // namespace

void load_weights(const std::string &path, const std::vector<WeightBinding> &bindings)
{
    std::ifstream file(path, std::ios::binary | std::ios::ate);
    if(!file)
    {
        throw Error(path + ": cannot open weight file: " + std::strerror(errno));
    }
    std::vector<uint8_t> bytes(static_cast<size_t>(file.tellg()));
    file.seekg(0);
    file.read(reinterpret_cast<char *>(bytes.data()), static_cast<std::streamsize>(bytes.size()));

    if(bytes.size() < sizeof(kWeightMagic) || std::memcmp(bytes.data(), kWeightMagic, sizeof(kWeightMagic)) != 0)
    {
        throw Error(path + ": not an engine weight file (bad magic)");
    }
    if(bytes.size() < sizeof(kWeightMagic) + 3 * sizeof(uint32_t))
    {
        throw Error(path + ": truncated weight file (" + std::to_string(bytes.size()) + " bytes)");
    }
    const size_t body = bytes.size() - sizeof(uint32_t);
    Reader       reader(path, bytes, body);
    reader.take(sizeof(kWeightMagic), "the magic");
    const uint32_t version = reader.u32("the version");
    if(version != kWeightFileVersion)
    {
        throw Error(path + ": weight file format version " + std::to_string(version) + "; this engine reads version " + std::to_string(kWeightFileVersion));
    }
    const uint32_t count = reader.u32("the tensor count");
    if(count != bindings.size())
    {
        throw Error(path + ": holds " + std::to_string(count) + " tensors; this network needs " + std::to_string(bindings.size()) + " (weights of another model?)");
    }
    size_t data_bytes = 0;
    for(const WeightBinding &binding : bindings)
    {
        const uint32_t    name_size = reader.u32("the tensor table");
        const char       *name      = reinterpret_cast<const char *>(reader.take(name_size, "the tensor table"));
        const std::string found(name, name_size);
        const uint32_t ndim = reader.u32("the tensor table");
        if(ndim > 8)
        {
            throw Error(path + ": corrupted tensor table: tensor '" + found + "' claims " + std::to_string(ndim) + " dimensions");
        }
        std::vector<unsigned int> dims(ndim);
        for(unsigned int &dim : dims)
        {
            dim = reader.u32("the tensor table");
        }
        if(found != binding.name || dims != binding.dims)
        {
            throw Error(path + ": tensor '" + found + "' " + dims_text(dims) + " where the network expects '" + binding.name + "' " + dims_text(binding.dims) + " (weights of another model?)");
        }
        const uint32_t type     = reader.u32("the tensor table");
        const uint32_t expected = element_type(binding.tensor->info()->data_type());
        if(type != expected)
        {
            throw Error(path + ": tensor '" + found + "' holds " + element_name(type) + " values where the network expects " + element_name(expected) + " (a float32 engine with 8-bit weights, or the reverse?)");
        }
        data_bytes += tensor_bytes(*binding.tensor);
    }
    if(reader.remaining() != data_bytes)
    {
        throw Error(path + ": " + (reader.remaining() < data_bytes ? "truncated weight file" : "weight file too long") + ": " + std::to_string(reader.remaining()) + " bytes of tensor data, expected " + std::to_string(data_bytes));
    }
    uint32_t stored_crc;
    std::memcpy(&stored_crc, bytes.data() + body, sizeof(stored_crc));
    if(stored_crc != crc32(bytes.data(), body))
    {
        throw Error(path + ": checksum mismatch: the weight file is corrupted");
    }
    for(const WeightBinding &binding : bindings)
    {
        copy_bytes_into(*binding.tensor, reader.take(tensor_bytes(*binding.tensor), binding.name));
    }
}
} // namespace engine
