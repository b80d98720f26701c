// The XNNPACK peer: Debian bookworm's XNNPACK (2022-02 snapshot, shared library) driven through its operator API
// (xnn_create_*_f32 / xnn_setup_* / xnn_run_operator), channels-last, from the same plan file as the ACL graph peer
// (bench/peers/acl_graph/main.cpp describes the format; the layout field is ignored: XNNPACK is NHWC only), with
// the extensions EfficientNet-Lite needs (bench/peers/network.py EXTENSIONS):
//   conv ... RELU GROUPS          RELU: 0 none, 1 ReLU, 6 ReLU6; GROUPS (depthwise: = channels) only when not 1
//   add NAME INPUT1 INPUT2 ACT    element-wise sum, ACT as RELU
//   fc NAME INPUT UNITS ACT       fully connected on a 1x1 input (weights OI, then bias, in the weight file)
//
// That XNNPACK's subgraph API has no concatenation, so the operator API is used the way XNNPACK's own model
// benchmarks use it: a convolution whose only consumer is a concatenation writes its channels straight into the
// concatenation's buffer (output pixel stride = the concatenation's channels, output pointer offset by the channels
// before it), which makes the concatenation free. Any other concatenation input is copied (xnn_copy_nc_x32).
// Caffe's rounded-up pooling windows become extra bottom/right padding, which XNNPACK's max pooling ignores (its
// indirection clamps to the input's edge). Weights arrive OIHW (the plan's weight file) and are repacked OHWI here,
// before the measured runs; the input is put channels-last once, then copied into the network's input buffer in
// every run, like the ACL peer's input accessor. Command line and output: peer_cli.h.
#include "peer_cli.h"

#include <cpuinfo.h>
#include <pthreadpool.h>
#include <xnnpack.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>

namespace
{
constexpr float kInf = std::numeric_limits<float>::infinity();

/** An activation: C x H x W, channels-last at `data` with `stride` floats between pixels (> C inside a
 *  concatenation's buffer). */
struct Tensor
{
    size_t c{ 0 }, h{ 0 }, w{ 0 };
    float *data{ nullptr };
    size_t stride{ 0 };
};

/** One plan line, parsed. */
struct Line
{
    std::string              kind, name;
    std::vector<std::string> inputs;
    unsigned                 filters{ 0 }, channels{ 0 }, kh{ 1 }, kw{ 1 }, sh{ 1 }, sw{ 1 };
    unsigned                 top{ 0 }, bottom{ 0 }, left{ 0 }, right{ 0 }, ceil{ 0 }, relu{ 0 }, groups{ 1 };
};

/** The clamp of a fused activation (0 none, 1 ReLU, 6 ReLU6). */
std::pair<float, float> bounds(const Line &line)
{
    if(line.relu != 0 && line.relu != 1 && line.relu != 6)
        throw peer::Error(line.name + ": unknown activation " + std::to_string(line.relu));
    return { line.relu ? 0.f : -kInf, line.relu == 6 ? 6.f : kInf };
}

void check(xnn_status status, const std::string &what)
{
    if(status != xnn_status_success)
        throw peer::Error(what + ": XNNPACK status " + std::to_string(static_cast<int>(status)));
}

/** Output size of a window along one axis; Caffe's rounding up keeps the last window starting inside the input
 *  (and its top/left padding). */
size_t window_out(size_t in, unsigned k, unsigned s, unsigned before, unsigned after, bool ceil)
{
    const size_t span = in + before + after;
    if(span < k)
        throw peer::Error("window larger than its padded input");
    size_t out = ceil ? (span - k + s - 1) / s + 1 : (span - k) / s + 1;
    if(ceil && before > 0 && (out - 1) * s >= in + before)
        --out;
    return out;
}

std::vector<Line> read_plan(const peer::Options &options)
{
    std::ifstream plan(options.model);
    if(!plan)
        throw peer::Error(options.model + ": cannot open");
    std::vector<Line> lines;
    std::string       text;
    for(size_t number = 1; std::getline(plan, text); ++number)
    {
        std::istringstream in(text);
        Line               line;
        in >> line.kind >> line.name;
        const std::string where = options.model + ":" + std::to_string(number);
        if(line.kind == "input")
        {
            std::string layout;
            in >> line.channels >> line.kh >> line.kw >> layout; // C H W (kh/kw hold H/W)
        }
        else
        {
            std::string from;
            in >> from;
            line.inputs.push_back(from);
            if(line.kind == "conv")
                in >> line.filters >> line.channels >> line.kh >> line.kw;
            else if(line.kind == "maxpool" || line.kind == "avgpool")
                in >> line.kh >> line.kw;
            if(line.kind == "conv" || line.kind == "maxpool" || line.kind == "avgpool")
                in >> line.sh >> line.sw >> line.top >> line.bottom >> line.left >> line.right >> line.ceil;
            if(line.kind == "conv" && in >> line.relu && !(in >> line.groups))
            {
                if(!in.eof())
                    throw peer::Error(where + ": malformed line: " + text);
                in.clear(); // no GROUPS field: an ordinary convolution
                line.groups = 1;
            }
            else if(line.kind == "concat" || line.kind == "add")
            {
                in >> from;
                line.inputs.push_back(from);
                if(line.kind == "add")
                    in >> line.relu;
            }
            else if(line.kind == "fc")
                in >> line.filters >> line.relu;
            else if(line.kind != "conv" && line.kind != "maxpool" && line.kind != "avgpool" && line.kind != "global_avgpool"
                    && line.kind != "softmax")
                throw peer::Error(where + ": unknown layer kind '" + line.kind + "'");
        }
        if(!in)
            throw peer::Error(where + ": malformed line: " + text);
        lines.push_back(line);
    }
    if(lines.size() < 2 || lines.front().kind != "input")
        throw peer::Error(options.model + ": want an input line and at least one layer");
    return lines;
}

/** The network as XNNPACK operators over buffers it owns, set up once and run in plan order. */
class Network
{
public:
    Network(const std::vector<Line> &lines, const std::vector<float> &weights, pthreadpool_t pool)
        : _pool(pool)
    {
        const Line &input = lines.front();
        _input            = make(input.name, input.channels, input.kh, input.kw);
        // Which convolutions write straight into a concatenation: those whose only consumer it is.
        std::map<std::string, unsigned> uses;
        for(const Line &line : lines)
            for(const std::string &name : line.inputs)
                ++uses[name];
        std::map<std::string, const Line *> by_name;
        for(const Line &line : lines)
            by_name[line.name] = &line;
        std::map<std::string, std::pair<std::string, size_t>> into; // conv -> (concat, channel offset)
        for(const Line &line : lines)
        {
            if(line.kind != "concat")
                continue;
            const Line *a = lookup(by_name, line.inputs[0]), *b = lookup(by_name, line.inputs[1]);
            if(a->kind == "conv" && b->kind == "conv" && a != b && uses[a->name] == 1 && uses[b->name] == 1)
            {
                into[a->name] = { line.name, 0 };
                into[b->name] = { line.name, a->filters };
                ++_copy_free;
            }
        }
        size_t used = 0;
        for(size_t i = 1; i < lines.size(); ++i)
        {
            const Line &line = lines[i];
            const Tensor in  = tensor(line.inputs[0]);
            if(line.kind == "conv")
            {
                if(line.channels != in.c)
                    throw peer::Error(line.name + ": " + std::to_string(line.channels) + " input channels, its input has "
                                      + std::to_string(in.c));
                if(line.groups == 0 || line.channels % line.groups || line.filters % line.groups)
                    throw peer::Error(line.name + ": " + std::to_string(line.groups) + " groups do not divide the channels");
                const size_t cg = line.channels / line.groups, og = line.filters / line.groups;
                const size_t oh = window_out(in.h, line.kh, line.sh, line.top, line.bottom, line.ceil);
                const size_t ow = window_out(in.w, line.kw, line.sw, line.left, line.right, line.ceil);
                Tensor       out;
                auto         target = into.find(line.name);
                if(target != into.end())
                {
                    // the concatenation's buffer: made by whichever of its two convolutions comes first
                    const Line *concat = by_name.at(target->second.first);
                    const Line *a = by_name.at(concat->inputs[0]), *b = by_name.at(concat->inputs[1]);
                    if(_tensors.count(concat->name) == 0)
                        make(concat->name, a->filters + b->filters, oh, ow);
                    Tensor whole = _tensors.at(concat->name);
                    if(whole.h != oh || whole.w != ow)
                        throw peer::Error(concat->name + ": inputs of different heights or widths");
                    out = { line.filters, oh, ow, whole.data + target->second.second, whole.stride };
                    _tensors[line.name] = out;
                }
                else
                    out = make(line.name, line.filters, oh, ow);
                const size_t count = static_cast<size_t>(line.filters) * cg * line.kh * line.kw;
                if(used + count + line.filters > weights.size())
                    throw peer::Error("weight file too short at " + line.name);
                // OIHW -> OHWI: XNNPACK's [groups, group output channels, kernel height, kernel width, group input
                // channels] (depthwise: [channels, 1, kh, kw, 1], the same order as OIHW)
                std::vector<float> ohwi(count);
                for(size_t o = 0; o < line.filters; ++o)
                    for(size_t c = 0; c < cg; ++c)
                        for(size_t y = 0; y < line.kh; ++y)
                            for(size_t x = 0; x < line.kw; ++x)
                                ohwi[((o * line.kh + y) * line.kw + x) * cg + c]
                                    = weights[used + ((o * cg + c) * line.kh + y) * line.kw + x];
                const float *bias = weights.data() + used + count;
                used += count + line.filters;
                const auto     clamp = bounds(line);
                xnn_operator_t op    = nullptr;
                check(xnn_create_convolution2d_nhwc_f32(line.top, line.right, line.bottom, line.left, line.kh, line.kw,
                                                        line.sh, line.sw, 1, 1, line.groups, cg, og, in.stride, out.stride,
                                                        ohwi.data(), bias, clamp.first, clamp.second, 0, &op),
                      line.name);
                keep(op);
                check(xnn_setup_convolution2d_nhwc_f32(op, 1, in.h, in.w, in.data, out.data, _pool), line.name);
            }
            else if(line.kind == "maxpool" || line.kind == "avgpool")
            {
                const size_t oh = window_out(in.h, line.kh, line.sh, line.top, line.bottom, line.ceil);
                const size_t ow = window_out(in.w, line.kw, line.sw, line.left, line.right, line.ceil);
                // rounding up = extra rows/columns at the bottom/right, so XNNPACK's floor rule gives oh x ow
                const unsigned bottom = static_cast<unsigned>((oh - 1) * line.sh + line.kh - in.h - line.top);
                const unsigned right  = static_cast<unsigned>((ow - 1) * line.sw + line.kw - in.w - line.left);
                const Tensor   out    = make(line.name, in.c, oh, ow);
                xnn_operator_t op     = nullptr;
                if(line.kind == "maxpool")
                {
                    check(xnn_create_max_pooling2d_nhwc_f32(line.top, right, bottom, line.left, line.kh, line.kw, line.sh,
                                                            line.sw, 1, 1, in.c, in.stride, out.stride, -kInf, kInf, 0, &op),
                          line.name);
                    keep(op);
                    check(xnn_setup_max_pooling2d_nhwc_f32(op, 1, in.h, in.w, in.data, out.data, _pool), line.name);
                }
                else
                {
                    if(line.top || line.left || bottom || right)
                        throw peer::Error(line.name + ": padded average pooling is not exported");
                    check(xnn_create_average_pooling2d_nhwc_f32(0, 0, 0, 0, line.kh, line.kw, line.sh, line.sw, in.c,
                                                                in.stride, out.stride, -kInf, kInf, 0, &op),
                          line.name);
                    keep(op);
                    check(xnn_setup_average_pooling2d_nhwc_f32(op, 1, in.h, in.w, in.data, out.data, _pool), line.name);
                }
            }
            else if(line.kind == "global_avgpool")
            {
                const Tensor   out = make(line.name, in.c, 1, 1);
                xnn_operator_t op  = nullptr;
                check(xnn_create_global_average_pooling_nwc_f32(in.c, in.stride, out.stride, -kInf, kInf, 0, &op), line.name);
                keep(op);
                check(xnn_setup_global_average_pooling_nwc_f32(op, 1, in.h * in.w, in.data, out.data, _pool), line.name);
            }
            else if(line.kind == "softmax")
            {
                if(in.h * in.w != 1)
                    throw peer::Error(line.name + ": softmax over more than one pixel");
                const Tensor   out = make(line.name, in.c, 1, 1);
                xnn_operator_t op  = nullptr;
                check(xnn_create_softmax_nc_f32(in.c, in.stride, out.stride, 0, &op), line.name);
                keep(op);
                check(xnn_setup_softmax_nc_f32(op, 1, in.data, out.data, _pool), line.name);
            }
            else if(line.kind == "add")
            {
                const Tensor second = tensor(line.inputs[1]);
                if(in.c != second.c || in.h != second.h || in.w != second.w || in.stride != in.c || second.stride != second.c)
                    throw peer::Error(line.name + ": inputs of different shapes (or inside a concatenation)");
                const Tensor   out   = make(line.name, in.c, in.h, in.w);
                const auto     clamp = bounds(line);
                const size_t   shape[4] = { 1, in.h, in.w, in.c };
                xnn_operator_t op       = nullptr;
                check(xnn_create_add_nd_f32(clamp.first, clamp.second, 0, &op), line.name);
                keep(op);
                check(xnn_setup_add_nd_f32(op, 4, shape, 4, shape, in.data, second.data, out.data, _pool), line.name);
            }
            else if(line.kind == "fc")
            {
                if(in.h * in.w != 1)
                    throw peer::Error(line.name + ": fully connected on more than one pixel");
                const size_t count = static_cast<size_t>(line.filters) * in.c;
                if(used + count + line.filters > weights.size())
                    throw peer::Error("weight file too short at " + line.name);
                const Tensor   out   = make(line.name, line.filters, 1, 1);
                const auto     clamp = bounds(line);
                xnn_operator_t op    = nullptr;
                check(xnn_create_fully_connected_nc_f32(in.c, line.filters, in.stride, out.stride, weights.data() + used,
                                                        weights.data() + used + count, clamp.first, clamp.second, 0, &op),
                      line.name);
                used += count + line.filters;
                keep(op);
                check(xnn_setup_fully_connected_nc_f32(op, 1, in.data, out.data, _pool), line.name);
            }
            else if(line.kind == "concat")
            {
                const Tensor second = tensor(line.inputs[1]);
                if(in.h != second.h || in.w != second.w)
                    throw peer::Error(line.name + ": inputs of different heights or widths");
                if(_tensors.count(line.name) == 0) // not made by its convolutions: copy both halves in
                {
                    const Tensor out = make(line.name, in.c + second.c, in.h, in.w);
                    size_t       offset = 0;
                    for(const Tensor &part : { in, second })
                    {
                        xnn_operator_t op = nullptr;
                        check(xnn_create_copy_nc_x32(part.c, part.stride, out.stride, 0, &op), line.name);
                        keep(op);
                        check(xnn_setup_copy_nc_x32(op, part.h * part.w, part.data, out.data + offset, _pool), line.name);
                        offset += part.c;
                    }
                }
            }
            _last = line.name;
        }
        if(used != weights.size())
            throw peer::Error("weight file has " + std::to_string(weights.size() - used) + " values the plan does not use");
    }
    ~Network()
    {
        for(xnn_operator_t op : _operators)
            xnn_delete_operator(op);
    }
    Network(const Network &) = delete;
    Network &operator=(const Network &) = delete;

    /** One inference: the channels-last input copied in, then every operator. */
    void run(const std::vector<float> &nhwc)
    {
        std::memcpy(_input.data, nhwc.data(), nhwc.size() * sizeof(float));
        for(xnn_operator_t op : _operators)
            check(xnn_run_operator(op, _pool), "xnn_run_operator");
    }
    /** The last layer's output, NCHW. */
    std::vector<float> output() const
    {
        const Tensor       t = _tensors.at(_last);
        std::vector<float> out(t.c * t.h * t.w);
        for(size_t z = 0; z < t.c; ++z)
            for(size_t p = 0; p < t.h * t.w; ++p)
                out[z * t.h * t.w + p] = t.data[p * t.stride + z];
        return out;
    }
    size_t operators() const
    {
        return _operators.size();
    }
    size_t copy_free_concats() const
    {
        return _copy_free;
    }

private:
    static const Line *lookup(const std::map<std::string, const Line *> &by_name, const std::string &name)
    {
        auto found = by_name.find(name);
        if(found == by_name.end())
            throw peer::Error("no layer '" + name + "'");
        return found->second;
    }
    Tensor tensor(const std::string &name) const
    {
        auto found = _tensors.find(name);
        if(found == _tensors.end())
            throw peer::Error("no earlier layer '" + name + "'");
        return found->second;
    }
    Tensor make(const std::string &name, size_t c, size_t h, size_t w)
    {
        // XNNPACK may read up to XNN_EXTRA_BYTES past an input's end
        _buffers.emplace_back(c * h * w + XNN_EXTRA_BYTES / sizeof(float), 0.f);
        const Tensor t{ c, h, w, _buffers.back().data(), c };
        _tensors[name] = t;
        return t;
    }
    void keep(xnn_operator_t op)
    {
        _operators.push_back(op);
    }

    pthreadpool_t                   _pool;
    std::vector<std::vector<float>> _buffers;
    std::map<std::string, Tensor>   _tensors;
    std::vector<xnn_operator_t>     _operators;
    Tensor                          _input;
    std::string                     _last;
    size_t                          _copy_free{ 0 };
};
} // namespace

int main(int argc, char **argv)
{
    return peer::guarded([&]
    {
        const peer::Options      options = peer::parse(argc, argv);
        const std::vector<float> nchw    = peer::read_floats(options.input, options.input_size());
        const std::vector<float> weights = peer::read_floats(options.weights, 0);
        const std::vector<Line>  lines   = read_plan(options);
        const Line              &input   = lines.front();
        if(input.channels != options.channels || input.kh != options.height || input.kw != options.width)
            throw peer::Error(options.model + ": input shape differs from --shape");
        check(xnn_initialize(nullptr), "xnn_initialize (a CPU without NEON?)");
        // what XNNPACK's CPU detection saw (it picks its microkernels from it): the label must match
        if(!cpuinfo_initialize())
            throw peer::Error("cpuinfo_initialize failed");
        const cpuinfo_core *core = cpuinfo_get_core(0);
        const unsigned      uarch = core != nullptr ? static_cast<unsigned>(core->uarch) : 0U;

        std::vector<float> nhwc(nchw.size());
        const size_t       c = options.channels, pixels = static_cast<size_t>(options.height) * options.width;
        for(size_t z = 0; z < c; ++z)
            for(size_t p = 0; p < pixels; ++p)
                nhwc[p * c + z] = nchw[z * pixels + p];

        pthreadpool_t pool = options.threads > 1 ? pthreadpool_create(options.threads) : nullptr;
        {
            Network                   network(lines, weights, pool);
            const std::vector<double> times  = peer::measure(options, [&] { network.run(nhwc); });
            const std::vector<float>  result = network.output();
            peer::write_floats(options.output, result.data(), result.size());
            char hex[16];
            std::snprintf(hex, sizeof hex, "\"0x%08x\"", uarch);
            peer::report(times, { "\"operators\": " + std::to_string(network.operators()),
                                  "\"copy_free_concats\": " + std::to_string(network.copy_free_concats()),
                                  "\"uarch\": " + std::string(hex) });
        }
        if(pool != nullptr)
            pthreadpool_destroy(pool);
    });
}
