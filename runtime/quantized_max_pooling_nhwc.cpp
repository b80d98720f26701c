#include "quantized_max_pooling_nhwc.h"

#include "engine.h"
#include "max_pooling_window.h"

#include "arm_compute/core/Error.h"

using namespace arm_compute;

namespace engine
{
Status QuantizedMaxPoolingNhwc::validate(const ITensorInfo *input, const ITensorInfo *output, const PoolingLayerInfo &info)
{
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_type() != DataType::QASYMM8 || output->data_type() != DataType::QASYMM8, "QASYMM8 only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->quantization_info() != output->quantization_info(), "input and output must share their quantization");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->strides_in_bytes()[0] != 1 || output->strides_in_bytes()[0] != 1, "a pixel's channels must lie back to back");
    return validate_max_pooling_window(input, output, info);
}

void QuantizedMaxPoolingNhwc::configure(ITensor *input, ITensor *output, const PoolingLayerInfo &info)
{
    ARM_COMPUTE_ERROR_THROW_ON(validate(input->info(), output->info(), info));
    _input      = input;
    _output     = output;
    _pad_stride = info.pad_stride_info;
    _pool       = info.pool_size;
}

void QuantizedMaxPoolingNhwc::run()
{
    split(_output->info()->dimension(2), "QuantizedMaxPoolingNhwc",
          [this](size_t first, size_t end) { max_pooling::rows<uint8_t>(*_input, *_output, _pad_stride, _pool, first, end); });
}
} // namespace engine
