// Resizing of a float32 tensor's height and width by separable taps (ONNX Resize / Upsample: nearest, linear,
// cubic, antialiased, crop-and-resize), NCHW or NHWC. The compiler works out the taps from the sizes and the
// resize's fields (neoncc/ops/resize.py): per output row, the first input row it reads and K weights for the K
// rows from there; the same for columns. An output row or column whose first index is -1 lies outside the input
// (tf_crop_and_resize) and gets the extrapolation value. run() computes, per channel and output row, the weighted
// sum of its K input rows into a row buffer, then each output pixel from K values of that buffer; channels are split
// among the scheduler's threads.
#pragma once

#include "arm_compute/core/Types.h"
#include "arm_compute/runtime/IFunction.h"
#include "arm_compute/runtime/Tensor.h"

#include <vector>

namespace engine
{
/** The taps of a resize along height (y) and width (x). */
struct ResizeTables
{
    std::vector<int>   first_y;  // per output row: first input row, or -1 (extrapolated)
    std::vector<float> weight_y; // per output row: ky weights
    unsigned int       ky;
    std::vector<int>   first_x;  // per output column: first input column, or -1
    std::vector<float> weight_x; // per output column: kx weights
    unsigned int       kx;
    float              extrapolation_value;
};

class Resize : public arm_compute::IFunction
{
public:
    static arm_compute::Status validate(const arm_compute::ITensorInfo *input, const arm_compute::ITensorInfo *output, const ResizeTables &tables);
    void configure(arm_compute::ITensor *input, arm_compute::ITensor *output, const ResizeTables &tables);
    void run() override;

private:
    void channels(size_t first, size_t end) const;

    arm_compute::ITensor *_input{ nullptr };
    arm_compute::ITensor *_output{ nullptr };
    ResizeTables          _tables{};
};
} // namespace engine
