#include "pointwise_convolution.h"

#include "engine.h"

#include <cstring>

using namespace arm_compute;

namespace engine
{
namespace
{
// B (the activations) changes every run: it must not be reshaped only once.
const GEMMInfo kGemmInfo(false, false, false);

struct Matrices
{
    TensorInfo x, w, b, y;
};

Matrices matrices(const ITensorInfo &input, const ITensorInfo &output)
{
    const size_t pixels = input.dimension(0) * input.dimension(1);
    return { TensorInfo(TensorShape(pixels, input.dimension(2)), 1, DataType::F32), TensorInfo(TensorShape(input.dimension(2), output.dimension(2)), 1, DataType::F32),
             TensorInfo(TensorShape(1U, output.dimension(2)), 1, DataType::F32), TensorInfo(TensorShape(pixels, output.dimension(2)), 1, DataType::F32) };
}

/** Whether a 3-D tensor's planes lie back to back, so that it reads as a dense matrix [channels x pixels]. */
bool dense(const ITensorInfo &info)
{
    const Strides &strides = info.strides_in_bytes();
    return strides[1] == info.dimension(0) * info.element_size() && strides[2] == strides[1] * info.dimension(1);
}
} // namespace

PointwiseConvolution::PointwiseConvolution(std::shared_ptr<IMemoryManager> memory_manager)
    : _gemm(std::move(memory_manager))
{
}

Status PointwiseConvolution::validate(const ITensorInfo *input, const ITensorInfo *weights, const ITensorInfo *biases, const ITensorInfo *output,
                                      const ActivationLayerInfo &act)
{
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(input->data_type() != DataType::F32 || input->data_layout() != DataLayout::NCHW, "F32 NCHW only");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(weights->dimension(0) != 1 || weights->dimension(1) != 1 || weights->dimension(2) != input->dimension(2),
                                    "weights must be 1x1xCinxCout");
    ARM_COMPUTE_RETURN_ERROR_ON_MSG(output->dimension(0) != input->dimension(0) || output->dimension(1) != input->dimension(1)
                                    || output->dimension(2) != weights->dimension(3) || biases->dimension(0) != weights->dimension(3),
                                    "output must be WxHxCout (stride 1, no padding)");
    const Matrices m = matrices(*input, *output);
    ARM_COMPUTE_RETURN_ON_ERROR(NEGEMM::validate(&m.w, &m.x, nullptr, &m.y, 1.f, 0.f, kGemmInfo));
    ARM_COMPUTE_RETURN_ON_ERROR(NEArithmeticAddition::validate(&m.y, &m.b, &m.y, ConvertPolicy::SATURATE));
    if(act.enabled())
    {
        ARM_COMPUTE_RETURN_ON_ERROR(NEActivationLayer::validate(&m.y, nullptr, act));
    }
    return Status{};
}

void PointwiseConvolution::configure(ITensor *input, ITensor *weights, ITensor *biases, ITensor *output, const ActivationLayerInfo &act)
{
    _input   = input;
    _weights = weights;
    _biases  = biases;
    _output  = output;
    Matrices m = matrices(*input->info(), *output->info());
    _x.allocator()->init(m.x);
    _w.allocator()->init(m.w);
    _b.allocator()->init(m.b);
    _y.allocator()->init(m.y);
    _gemm.configure(&_w, &_x, nullptr, &_y, 1.f, 0.f, kGemmInfo);
    _add_bias.configure(&_y, &_b, &_y, ConvertPolicy::SATURATE);
    _has_activation = act.enabled();
    if(_has_activation)
    {
        _activation.configure(&_y, nullptr, act);
    }
}

void PointwiseConvolution::bind()
{
    if(_bound)
    {
        return;
    }
    const auto start = [](ITensor *t) { return t->buffer() + t->info()->offset_first_element_in_bytes(); };
    _input_is_view  = dense(*_input->info()) && !_x.info()->has_padding();
    _output_is_view = dense(*_output->info()) && !_y.info()->has_padding();
    if(_input_is_view)
    {
        _x.allocator()->import_memory(start(_input));
    }
    else
    {
        _x.allocator()->allocate();
    }
    if(_output_is_view)
    {
        _y.allocator()->import_memory(start(_output));
    }
    else
    {
        _y.allocator()->allocate();
    }
    // Weights and biases are constant: a padded matrix gets its copy once, here.
    for(auto pair : { std::make_pair(_weights, &_w), std::make_pair(_biases, &_b) })
    {
        if(!pair.second->info()->has_padding())
        {
            pair.second->allocator()->import_memory(start(pair.first));
            continue;
        }
        pair.second->allocator()->allocate();
        const size_t row = pair.second->info()->dimension(0) * pair.second->info()->element_size();
        for(size_t r = 0; r < pair.second->info()->dimension(1); ++r)
        {
            std::memcpy(pair.second->buffer() + pair.second->info()->offset_element_in_bytes(Coordinates(0, r)), start(pair.first) + r * row, row);
        }
    }
    _bound = true;
}

namespace
{
/** Copies between a W x H x C tensor and a matrix whose row c holds plane c (H rows of W), any strides. */
void copy_planes(ITensor &tensor, ITensor &matrix, bool into_matrix)
{
    const ITensorInfo &info  = *tensor.info();
    const size_t       width = info.dimension(0) * info.element_size();
    for(size_t c = 0; c < info.dimension(2); ++c)
    {
        uint8_t *row = matrix.buffer() + matrix.info()->offset_element_in_bytes(Coordinates(0, c));
        for(size_t y = 0; y < info.dimension(1); ++y, row += width)
        {
            uint8_t *plane_row = tensor.buffer() + info.offset_element_in_bytes(Coordinates(0, y, c));
            std::memcpy(into_matrix ? row : plane_row, into_matrix ? plane_row : row, width);
        }
    }
}
} // namespace

void PointwiseConvolution::prepare()
{
    bind();
    _gemm.prepare();
}

void PointwiseConvolution::run()
{
    bind();
    if(!_input_is_view)
    {
        copy_planes(*_input, _x, true);
    }
    _gemm.run();
    _add_bias.run();
    if(_has_activation)
    {
        _activation.run();
    }
    if(!_output_is_view)
    {
        copy_planes(*_output, _y, false);
    }
}
} // namespace engine
