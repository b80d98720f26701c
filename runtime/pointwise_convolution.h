// A 1x1, stride-1, unpadded convolution on NCHW data as one matrix product:
//   Y[Cout x HW] = W[Cout x Cin] . X[Cin x HW], then + bias per row, then the activation.
// NCHW is already the layout that product wants, whereas NEGEMMConvolutionLayer converts NCHW to im2col rows and
// back around its GEMM, which dominates the cost of SqueezeNet's thin squeeze and expand1x1 layers. A matrix is a
// view of its tensor's memory when the strides agree (a dense tensor, and a matrix ACL did not pad); otherwise it
// is a private copy, refreshed row by row around the product: correct always, free in the common case.
#pragma once

#include "arm_compute/runtime/IFunction.h"
#include "arm_compute/runtime/IMemoryManager.h"
#include "arm_compute/runtime/NEON/functions/NEActivationLayer.h"
#include "arm_compute/runtime/NEON/functions/NEArithmeticAddition.h"
#include "arm_compute/runtime/NEON/functions/NEGEMM.h"
#include "arm_compute/runtime/Tensor.h"

#include <memory>

namespace engine
{
class PointwiseConvolution : public arm_compute::IFunction
{
public:
    explicit PointwiseConvolution(std::shared_ptr<arm_compute::IMemoryManager> memory_manager = nullptr);

    static arm_compute::Status validate(const arm_compute::ITensorInfo *input, const arm_compute::ITensorInfo *weights, const arm_compute::ITensorInfo *biases,
                                        const arm_compute::ITensorInfo *output, const arm_compute::ActivationLayerInfo &act = arm_compute::ActivationLayerInfo());
    void configure(arm_compute::ITensor *input, arm_compute::ITensor *weights, arm_compute::ITensor *biases, arm_compute::ITensor *output,
                   const arm_compute::ActivationLayerInfo &act = arm_compute::ActivationLayerInfo());
    void prepare() override;
    void run() override;

private:
    /** Decides view or copy for each matrix and binds the memory, once the tensors have their memory and
     *  every layer has set its padding (the network's memory pools are held for its lifetime). */
    void bind();

    arm_compute::ITensor *_input{ nullptr };
    arm_compute::ITensor *_weights{ nullptr };
    arm_compute::ITensor *_biases{ nullptr };
    arm_compute::ITensor *_output{ nullptr };
    arm_compute::Tensor   _x, _w, _b, _y; // the matrices, as views
    bool                  _bound{ false };
    bool                  _input_is_view{ false };
    bool                  _output_is_view{ false };
    arm_compute::NEGEMM               _gemm;
    arm_compute::NEArithmeticAddition _add_bias;
    arm_compute::NEActivationLayer    _activation;
    bool                              _has_activation{ false };
};
} // namespace engine
