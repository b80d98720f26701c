// The ACL graph-API peer: a network built with arm_compute::graph::frontend (Stream, SubStream, InputLayer,
// ConvolutionLayer, ...) from a plan file, so ACL's own graph machinery (its convolution method choice, conv+ReLU
// fusion, copy-free depth concatenation, memory managers) runs the same network as our generated engine.
//
// The plan (written by bench/peers/acl_graph/__init__.py) has one layer per line, sizes as ACL wants them:
//   input NAME C H W NCHW|NHWC          (every tensor of the graph takes the input's layout)
//   conv NAME INPUT FILTERS CHANNELS KH KW SH SW TOP BOTTOM LEFT RIGHT CEIL RELU
//   maxpool|avgpool NAME INPUT KH KW SH SW TOP BOTTOM LEFT RIGHT CEIL
//   global_avgpool NAME INPUT
//   concat NAME INPUT1 INPUT2
//   softmax NAME INPUT
// The weight file holds each convolution's weights (OIHW) then bias, float32, in plan order; it must be used up
// exactly. Command line and output: peer_cli.h.
#include "peer_cli.h"

#include "arm_compute/core/Helpers.h"
#include "arm_compute/core/Window.h"
#include "arm_compute/graph.h"

#include <algorithm>
#include <map>
#include <memory>

using namespace arm_compute;
using namespace arm_compute::graph;
using namespace arm_compute::graph::frontend;

namespace
{
/** Copies row-major floats (NCHW, OIHW) into or out of an ACL tensor row by row: tensors may carry padding. */
void copy_rows(ITensor &tensor, float *data, size_t count, bool into_tensor, const std::string &what)
{
    const TensorShape &shape = tensor.info()->tensor_shape();
    if(shape.total_size() != count)
    {
        throw peer::Error(what + ": ACL tensor has " + std::to_string(shape.total_size()) + " values, the file "
                          + std::to_string(count));
    }
    Window window;
    window.use_tensor_dimensions(shape);
    window.set(Window::DimX, Window::Dimension(0, 1, 1));
    Iterator     rows(&tensor, window);
    const size_t row    = shape[0];
    size_t       offset = 0;
    execute_window_loop(window, [&](const Coordinates &)
    {
        float *p = reinterpret_cast<float *>(rows.ptr());
        if(into_tensor)
            std::copy(data + offset, data + offset + row, p);
        else
            std::copy(p, p + row, data + offset);
        offset += row;
    },
    rows);
}

/** Fills a tensor (weights, bias, the input) from NCHW/OIHW memory it does not own. An NHWC tensor (ACL shape
 *  [C, W, H, N]) gets a copy permuted to NHWC/OHWI, made once, so repeated runs copy rows as in NCHW. */
class FromMemory final : public ITensorAccessor
{
public:
    FromMemory(const float *data, size_t count, std::string what)
        : _data(data), _count(count), _what(std::move(what))
    {
    }
    bool access_tensor(ITensor &tensor) override
    {
        const TensorShape &shape = tensor.info()->tensor_shape();
        if(tensor.info()->data_layout() == DataLayout::NHWC && shape.num_dimensions() >= 3 && _permuted.empty())
        {
            const size_t c = shape[0], w = shape[1], h = shape[2], n = shape.total_size() / (c * w * h);
            _permuted.resize(_count);
            for(size_t b = 0; b < n; ++b)
                for(size_t z = 0; z < c; ++z)
                    for(size_t y = 0; y < h; ++y)
                        for(size_t x = 0; x < w; ++x)
                            _permuted.at(((b * h + y) * w + x) * c + z) = _data[((b * c + z) * h + y) * w + x];
        }
        copy_rows(tensor, _permuted.empty() ? const_cast<float *>(_data) : _permuted.data(), _count, true, _what);
        return true;
    }

private:
    const float       *_data;
    size_t             _count;
    std::string        _what;
    std::vector<float> _permuted;
};

/** Copies the network's output out after each run, and ends the run: ACL's graph manager loops over input,
 *  tasks and output while the accessors return true. An NHWC output is put back in NCHW order by nchw(), after
 *  the measured runs, so the layouts pay the same copy inside the counted span. */
class ToMemory final : public ITensorAccessor
{
public:
    bool access_tensor(ITensor &tensor) override
    {
        const TensorShape &shape = tensor.info()->tensor_shape();
        _out.resize(shape.total_size());
        copy_rows(tensor, _out.data(), _out.size(), false, "output");
        if(tensor.info()->data_layout() == DataLayout::NHWC && shape.num_dimensions() >= 3)
            _nhwc = { shape[0], shape[1], shape[2], shape.total_size() / (shape[0] * shape[1] * shape[2]) };
        return false; // GraphManager::execute_graph() repeats inferences until an accessor returns false
    }
    /** The last output, NCHW. */
    std::vector<float> nchw() const
    {
        if(_nhwc.empty())
            return _out;
        std::vector<float> out(_out.size());
        const size_t       c = _nhwc[0], w = _nhwc[1], h = _nhwc[2], n = _nhwc[3];
        for(size_t b = 0; b < n; ++b)
            for(size_t z = 0; z < c; ++z)
                for(size_t y = 0; y < h; ++y)
                    for(size_t x = 0; x < w; ++x)
                        out[((b * c + z) * h + y) * w + x] = _out[((b * h + y) * w + x) * c + z];
        return out;
    }

private:
    std::vector<float>  _out;
    std::vector<size_t> _nhwc; // C, W, H, N of an NHWC output
};

/** Hands out consecutive slices of the weight file, checking it is neither short nor too long. */
class WeightCursor
{
public:
    explicit WeightCursor(const std::vector<float> &weights)
        : _weights(weights)
    {
    }
    std::unique_ptr<ITensorAccessor> next(size_t count, const std::string &what)
    {
        if(_used + count > _weights.size())
        {
            throw peer::Error("weight file too short at " + what);
        }
        std::unique_ptr<ITensorAccessor> accessor = std::make_unique<FromMemory>(_weights.data() + _used, count, what);
        _used += count;
        return accessor;
    }
    void check_used_up() const
    {
        if(_used != _weights.size())
        {
            throw peer::Error("weight file has " + std::to_string(_weights.size() - _used) + " values the plan does not use");
        }
    }

private:
    const std::vector<float> &_weights;
    size_t                    _used{ 0 };
};

PadStrideInfo pad_stride(std::istream &line)
{
    unsigned sh, sw, top, bottom, left, right, ceil;
    line >> sh >> sw >> top >> bottom >> left >> right >> ceil;
    return PadStrideInfo(sw, sh, left, right, top, bottom, ceil ? DimensionRoundingType::CEIL : DimensionRoundingType::FLOOR);
}

/** The plan as a graph on `graph`; returns the number of layers. */
size_t build(Stream &graph, const peer::Options &options, const std::vector<float> &input, const std::vector<float> &weights,
             ToMemory *&output)
{
    std::ifstream plan(options.model);
    if(!plan)
    {
        throw peer::Error(options.model + ": cannot open");
    }
    std::map<std::string, std::unique_ptr<SubStream>> tails; // tensor name -> a stream ending in its producer
    auto tail = [&](const std::string &name) -> SubStream &
    {
        auto found = tails.find(name);
        if(found == tails.end())
            throw peer::Error(options.model + ": no earlier layer '" + name + "'");
        return *found->second;
    };
    WeightCursor cursor(weights);
    std::string  text, last;
    size_t       layers = 0;
    DataLayout   layout = DataLayout::NCHW;
    for(size_t number = 1; std::getline(plan, text); ++number)
    {
        std::istringstream line(text);
        std::string        kind, name, from;
        line >> kind >> name;
        if(kind == "input")
        {
            unsigned    c, h, w;
            std::string order;
            line >> c >> h >> w >> order;
            if(c != options.channels || h != options.height || w != options.width)
                throw peer::Error(options.model + ": input shape differs from --shape");
            if(order != "NCHW" && order != "NHWC")
                throw peer::Error(options.model + ": want layout NCHW or NHWC, got '" + order + "'");
            layout = order == "NHWC" ? DataLayout::NHWC : DataLayout::NCHW;
            const TensorShape shape = layout == DataLayout::NHWC ? TensorShape(c, w, h, 1U) : TensorShape(w, h, c, 1U);
            graph << InputLayer(TensorDescriptor(shape, DataType::F32, QuantizationInfo(), layout),
                                std::make_unique<FromMemory>(input.data(), input.size(), "input"))
                         .set_name(name);
            tails[name] = std::make_unique<SubStream>(graph);
            continue;
        }
        line >> from;
        auto stream = std::make_unique<SubStream>(tail(from));
        if(kind == "conv")
        {
            unsigned filters, channels, kh, kw;
            line >> filters >> channels >> kh >> kw;
            const PadStrideInfo info = pad_stride(line);
            unsigned            relu = 0;
            line >> relu;
            auto w = cursor.next(static_cast<size_t>(filters) * channels * kh * kw, name + " weights");
            auto b = cursor.next(filters, name + " bias");
            *stream << ConvolutionLayer(kw, kh, filters, std::move(w), std::move(b), info).set_name(name);
            if(relu)
                *stream << ActivationLayer(ActivationLayerInfo(ActivationLayerInfo::ActivationFunction::RELU)).set_name(name + "/relu");
        }
        else if(kind == "maxpool" || kind == "avgpool")
        {
            unsigned kh, kw;
            line >> kh >> kw;
            const PoolingType type = kind == "maxpool" ? PoolingType::MAX : PoolingType::AVG;
            *stream << PoolingLayer(PoolingLayerInfo(type, Size2D(kw, kh), layout, pad_stride(line))).set_name(name);
        }
        else if(kind == "global_avgpool")
            *stream << PoolingLayer(PoolingLayerInfo(PoolingType::AVG, layout)).set_name(name);
        else if(kind == "concat")
        {
            std::string second;
            line >> second;
            *stream << ConcatLayer(SubStream(tail(from)), SubStream(tail(second))).set_name(name);
        }
        else if(kind == "softmax") // over channels: flatten the 1x1xC tensor first, ACL's softmax runs along x
            *stream << FlattenLayer().set_name(name + "/flatten") << SoftmaxLayer().set_name(name);
        else
            throw peer::Error(options.model + ":" + std::to_string(number) + ": unknown layer kind '" + kind + "'");
        if(!line)
            throw peer::Error(options.model + ":" + std::to_string(number) + ": malformed line: " + text);
        tails[name] = std::move(stream);
        last        = name;
        ++layers;
    }
    cursor.check_used_up();
    auto sink = std::make_unique<ToMemory>();
    output    = sink.get(); // owned by the graph, which outlives its use in main()
    tail(last) << OutputLayer(std::move(sink)).set_name("output");
    return layers;
}
} // namespace

int main(int argc, char **argv)
{
    return peer::guarded([&]
    {
        const peer::Options      options = peer::parse(argc, argv);
        const std::vector<float> input   = peer::read_floats(options.input, options.input_size());
        const std::vector<float> weights = peer::read_floats(options.weights, 0);
        ToMemory                *output  = nullptr;

        Stream       graph(0, "peer");
        const size_t layers = build(graph, options, input, weights, output);
        GraphConfig  config;
        config.num_threads = static_cast<int>(options.threads);
        graph.finalize(Target::NEON, config);

        const std::vector<double> times = peer::measure(options, [&] { graph.run(); });
        const std::vector<float>  result = output->nchw();
        peer::write_floats(options.output, result.data(), result.size());
        peer::report(times, { "\"layers\": " + std::to_string(layers), "\"graph_nodes\": " + std::to_string(graph.graph().nodes().size()) });
    });
}
