#include "quantized_addition.h"

#include "arm_compute/core/Error.h"

#include <arm_neon.h>

#include <algorithm>

using namespace arm_compute;

namespace engine
{
Status QuantizedAddition::validate(const ITensorInfo *a, const ITensorInfo *b, const ITensorInfo *output, ConvertPolicy policy)
{
    ARM_COMPUTE_UNUSED(policy);
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(a->data_type() != DataType::QASYMM8 || b->data_type() != DataType::QASYMM8 || output->data_type() != DataType::QASYMM8,
                                    "QASYMM8 only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(a->tensor_shape() != b->tensor_shape() || a->tensor_shape() != output->tensor_shape(), "shapes must be equal (no broadcasting)");
    return Status{};
}

void QuantizedAddition::configure(ITensor *a, ITensor *b, ITensor *output, ConvertPolicy policy)
{
    ARM_COMPUTE_ERROR_THROW_ON(validate(a->info(), b->info(), output->info(), policy));
    ARM_COMPUTE_UNUSED(policy); // used by the check above, which release builds of ACL compile out
    _a      = a;
    _b      = b;
    _output = output;
    const UniformQuantizationInfo qa = a->info()->quantization_info().uniform();
    const UniformQuantizationInfo qb = b->info()->quantization_info().uniform();
    const UniformQuantizationInfo qo = output->info()->quantization_info().uniform();
    _ma       = qa.scale / qo.scale;
    _mb       = qb.scale / qo.scale;
    _constant = static_cast<float>(qo.offset) - _ma * static_cast<float>(qa.offset) - _mb * static_cast<float>(qb.offset) + 0.5f; // + 0.5: rounds
}

void QuantizedAddition::add_row(const uint8_t *a, const uint8_t *b, uint8_t *out, size_t n) const
{
    const float32x4_t ma = vdupq_n_f32(_ma), mb = vdupq_n_f32(_mb), constant = vdupq_n_f32(_constant);
    const float32x4_t low = vdupq_n_f32(0.f), high = vdupq_n_f32(255.f);
    size_t            x   = 0;
    for(; x + 8 <= n; x += 8)
    {
        const uint16x8_t wa = vmovl_u8(vld1_u8(a + x)), wb = vmovl_u8(vld1_u8(b + x));
        uint16x4_t       halves[2];
        for(int h = 0; h < 2; ++h)
        {
            const uint32x4_t ia = vmovl_u16(h ? vget_high_u16(wa) : vget_low_u16(wa));
            const uint32x4_t ib = vmovl_u16(h ? vget_high_u16(wb) : vget_low_u16(wb));
            float32x4_t      y  = vmlaq_f32(vmlaq_f32(constant, vcvtq_f32_u32(ia), ma), vcvtq_f32_u32(ib), mb);
            halves[h]           = vmovn_u32(vcvtq_u32_f32(vminq_f32(vmaxq_f32(y, low), high)));
        }
        vst1_u8(out + x, vmovn_u16(vcombine_u16(halves[0], halves[1])));
    }
    for(; x < n; ++x)
    {
        const float y = std::min(255.f, std::max(0.f, _constant + _ma * a[x] + _mb * b[x]));
        out[x]        = static_cast<uint8_t>(y);
    }
}

void QuantizedAddition::run()
{
    const ITensorInfo &info  = *_output->info();
    const size_t       width = info.dimension(0);
    // Row by row (any padding of the three tensors), each row in one call; unused dimensions are 1.
    const TensorShape &shape = info.tensor_shape();
    for(size_t w = 0; w < shape[3]; ++w)
    {
        for(size_t z = 0; z < shape[2]; ++z)
        {
            for(size_t y = 0; y < shape[1]; ++y)
            {
                const Coordinates at(0, y, z, w);
                add_row(_a->buffer() + _a->info()->offset_element_in_bytes(at), _b->buffer() + _b->info()->offset_element_in_bytes(at),
                        _output->buffer() + info.offset_element_in_bytes(at), width);
            }
        }
    }
}
} // namespace engine
