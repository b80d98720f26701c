// What our NHWC max pooling kernels (float32 and QASYMM8) both require of a window, whatever the element type: NHWC
// on both sides, a max pooling window (not global), as many output channels as input channels, and an output size
// that follows the window, stride and padding with floor rounding (Caffe's rounded-up windows arrive as padding).
#pragma once

#include "arm_compute/core/Error.h"
#include "arm_compute/core/ITensorInfo.h"
#include "arm_compute/core/Types.h"

namespace engine
{
inline arm_compute::Status validate_max_pooling_window(const arm_compute::ITensorInfo *input, const arm_compute::ITensorInfo *output,
                                                       const arm_compute::PoolingLayerInfo &info)
{
    using arm_compute::DataLayout;
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_layout() != DataLayout::NHWC || output->data_layout() != DataLayout::NHWC, "NHWC only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(info.pool_type != arm_compute::PoolingType::MAX || info.is_global_pooling, "max pooling with a window only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->dimension(0) != output->dimension(0), "input and output channels differ");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(info.pool_size.width == 0 || info.pool_size.height == 0, "empty window");
    const auto   stride = info.pad_stride_info.stride();
    const size_t width  = input->dimension(1) + info.pad_stride_info.pad_left() + info.pad_stride_info.pad_right();
    const size_t height = input->dimension(2) + info.pad_stride_info.pad_top() + info.pad_stride_info.pad_bottom();
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(width < info.pool_size.width || height < info.pool_size.height, "window larger than the padded input");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(output->dimension(1) != (width - info.pool_size.width) / stride.first + 1
                                        || output->dimension(2) != (height - info.pool_size.height) / stride.second + 1,
                                    "output size does not match the window, stride and padding (floor rounding)");
    return arm_compute::Status{};
}
} // namespace engine
