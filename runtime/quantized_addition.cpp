#include "quantized_addition.h"

#include "int8_dot.h"
#include "quantized_convolution.h"
#include "tensor_rows.h"

#include "arm_compute/core/Error.h"

#include <arm_neon.h>

#include <algorithm>
#include <cstring>

using namespace arm_compute;

namespace engine
{
namespace
{
constexpr int kLeftShift = 20; // TFLite's for 8-bit additions
} // namespace

Status QuantizedAddition::validate(const ITensorInfo *a, const ITensorInfo *b, const ITensorInfo *output, ConvertPolicy policy)
{
    ARM_COMPUTE_UNUSED(policy);
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(a->data_type() != DataType::QASYMM8 || b->data_type() != DataType::QASYMM8 || output->data_type() != DataType::QASYMM8,
                                    "QASYMM8 only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(a->tensor_shape() != b->tensor_shape() || a->tensor_shape() != output->tensor_shape(), "shapes must be equal (no broadcasting)");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(output->num_dimensions() > 4, "at most 4 dimensions");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(a->data_layout() != output->data_layout() || b->data_layout() != output->data_layout(),
                                    "all three tensors in one layout (NCHW or NHWC: the sum is element by element)");
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
    _offset_a   = qa.offset;
    _offset_b   = qb.offset;
    _offset_out = qo.offset;
    const double twice_max = 2. * static_cast<double>(std::max(qa.scale, qb.scale));
    const auto   factor    = [](double real, int32_t &multiplier, int32_t &shift) {
        int exponent = 0;
        quantize_multiplier(real, multiplier, exponent);
        shift = std::min(exponent, 0); // every factor is below 1
    };
    factor(static_cast<double>(qa.scale) / twice_max, _multiplier_a, _shift_a);
    factor(static_cast<double>(qb.scale) / twice_max, _multiplier_b, _shift_b);
    factor(twice_max / (static_cast<double>(1 << kLeftShift) * static_cast<double>(qo.scale)), _multiplier_out, _shift_out);
}

void QuantizedAddition::add_row(const uint8_t *a, const uint8_t *b, uint8_t *out, size_t n) const
{
    const int16x8_t offset_a = vdupq_n_s16(static_cast<int16_t>(_offset_a)), offset_b = vdupq_n_s16(static_cast<int16_t>(_offset_b));
    const int32x4_t ma = vdupq_n_s32(_multiplier_a), mb = vdupq_n_s32(_multiplier_b), mo = vdupq_n_s32(_multiplier_out);
    const int32x4_t ra = vdupq_n_s32(_shift_a), rb = vdupq_n_s32(_shift_b), ro = vdupq_n_s32(_shift_out);
    const int32x4_t zero  = vdupq_n_s32(_offset_out);
    const auto      eight = [&](const uint8_t *pa, const uint8_t *pb, uint8_t *dst) {
        const int16x8_t da = vsubq_s16(vreinterpretq_s16_u16(vmovl_u8(vld1_u8(pa))), offset_a);
        const int16x8_t db = vsubq_s16(vreinterpretq_s16_u16(vmovl_u8(vld1_u8(pb))), offset_b);
        uint16x4_t      halves[2];
        for(int h = 0; h < 2; ++h)
        {
            const int32x4_t ia  = vshlq_n_s32(vmovl_s16(h ? vget_high_s16(da) : vget_low_s16(da)), kLeftShift);
            const int32x4_t ib  = vshlq_n_s32(vmovl_s16(h ? vget_high_s16(db) : vget_low_s16(db)), kLeftShift);
            const int32x4_t sum = vaddq_s32(int8::scaled_down(ia, ma, ra), int8::scaled_down(ib, mb, rb));
            halves[h]           = vqmovun_s32(vaddq_s32(int8::scaled_down(sum, mo, ro), zero)); // saturated to 0..65535
        }
        vst1_u8(dst, vqmovn_u16(vcombine_u16(halves[0], halves[1]))); // and to 0..255
    };
    size_t x = 0;
    for(; x + 8 <= n; x += 8)
    {
        eight(a + x, b + x, out + x);
    }
    if(x < n) // the last few through the same arithmetic, in a buffer of eight
    {
        uint8_t ta[8] = {}, tb[8] = {}, to[8];
        std::memcpy(ta, a + x, n - x);
        std::memcpy(tb, b + x, n - x);
        eight(ta, tb, to);
        std::memcpy(out + x, to, n - x);
    }
}

void QuantizedAddition::run()
{
    for_each_row([this](const uint8_t *a, const uint8_t *b, uint8_t *out, size_t n) { add_row(a, b, out, n); }, static_cast<const ITensor &>(*_a),
                 static_cast<const ITensor &>(*_b), *_output);
}
} // namespace engine
