#include "max_pooling_nhwc.h"

#include "engine.h"
#include "max_pooling_window.h"

#include "arm_compute/core/Error.h"

using namespace arm_compute;

namespace engine
{
Status MaxPoolingNhwc::validate(const ITensorInfo *input, const ITensorInfo *output, const PoolingLayerInfo &info)
{
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_type() != DataType::F32 || output->data_type() != DataType::F32, "float32 only");
    return validate_max_pooling_window(input, output, info);
}

void MaxPoolingNhwc::configure(ITensor *input, ITensor *output, const PoolingLayerInfo &info)
{
    ARM_COMPUTE_ERROR_THROW_ON(validate(input->info(), output->info(), info));
    _input      = input;
    _output     = output;
    _pad_stride = info.pad_stride_info;
    _pool       = info.pool_size;
}

void MaxPoolingNhwc::run()
{
    split(_output->info()->dimension(2), "MaxPoolingNhwc",
          [this](size_t first, size_t end) { max_pooling::rows<float>(*_input, *_output, _pad_stride, _pool, first, end); });
}
} // namespace engine
