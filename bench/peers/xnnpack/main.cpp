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
//
// 8 bits (peer xnnpack_int8): the plan then also holds
//   quant NAME SCALE ZERO         the layer's output (or the input) in signed 8 bits: real = SCALE x (q - ZERO)
//   wscale NAME S0 S1 ...         a convolution's weight scale per output channel (symmetric, int8 weights)
// from the same calibration as our int8 engine (bench/peers/xnnpack/__init__.py). Layers with a quant line run in
// XNNPACK's 8-bit operators (convolutions: QC8, per-channel weights; max pooling S8; global average pooling and
// addition QS8), the others in float32; the float input is converted once (convert F32->QS8), and an 8-bit tensor
// read by a float layer once (convert QS8->F32). A convolution writing into a concatenation must share its
// quantization (our plan makes it so), and max pooling keeps its input's.
#include "peer_cli.h"

#include <cpuinfo.h>
#include <pthreadpool.h>
#include <xnnpack.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>

namespace
{
constexpr float kInf = std::numeric_limits<float>::infinity();

/** A tensor's signed 8-bit quantization: real = scale x (q - zero). */
struct Quant
{
    float scale{ 1.f };
    int   zero{ 0 };
};

/** An activation: C x H x W, channels-last at `data` with `stride` elements between pixels (> C inside a
 *  concatenation's buffer): float32, or signed 8 bits when `quant` is set. */
struct Tensor
{
    size_t       c{ 0 }, h{ 0 }, w{ 0 };
    uint8_t     *data{ nullptr };
    size_t       stride{ 0 };
    const Quant *quant{ nullptr };

    float *f32() const
    {
        return reinterpret_cast<float *>(data);
    }
    int8_t *s8() const
    {
        return reinterpret_cast<int8_t *>(data);
    }
    size_t element_size() const
    {
        return quant != nullptr ? 1 : sizeof(float);
    }
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

/** The plan's layers and, for an 8-bit plan, its quantization. */
struct Plan
{
    std::vector<Line>                          lines;
    std::map<std::string, Quant>               quant;  // tensors in 8 bits
    std::map<std::string, std::vector<float>>  wscale; // convolution -> weight scale per output channel
};

Plan read_plan(const peer::Options &options)
{
    std::ifstream file(options.model);
    if(!file)
        throw peer::Error(options.model + ": cannot open");
    Plan               plan;
    std::vector<Line> &lines = plan.lines;
    std::string        text;
    for(size_t number = 1; std::getline(file, text); ++number)
    {
        std::istringstream in(text);
        Line               line;
        in >> line.kind >> line.name;
        const std::string where = options.model + ":" + std::to_string(number);
        if(line.kind == "quant")
        {
            Quant q;
            if(!(in >> q.scale >> q.zero) || !(q.scale > 0.f) || q.zero < -128 || q.zero > 127)
                throw peer::Error(where + ": want quant NAME SCALE ZERO (scale > 0, zero in -128..127): " + text);
            plan.quant[line.name] = q;
            continue;
        }
        if(line.kind == "wscale")
        {
            std::vector<float> &scales = plan.wscale[line.name];
            for(float value; in >> value;)
            {
                if(!(value > 0.f))
                    throw peer::Error(where + ": weight scales must be positive: " + text);
                scales.push_back(value);
            }
            if(scales.empty())
                throw peer::Error(where + ": want wscale NAME S0 S1 ...: " + text);
            continue;
        }
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
    return plan;
}

/** The clamp of a fused activation on an 8-bit output: the quantized 0 (and 6), within -128..127. */
std::pair<int8_t, int8_t> bounds(const Line &line, const Quant &q)
{
    const auto real = bounds(line);
    const auto level = [&](float value) {
        return static_cast<int8_t>(std::min(127L, std::max(-128L, std::lround(value / q.scale) + q.zero)));
    };
    return { std::isinf(real.first) ? int8_t(-128) : level(real.first), std::isinf(real.second) ? int8_t(127) : level(real.second) };
}

/** The network as XNNPACK operators over buffers it owns, set up once and run in plan order. */
class Network
{
public:
    Network(const Plan &plan, const std::vector<float> &weights, pthreadpool_t pool)
        : _plan(plan), _pool(pool)
    {
        const std::vector<Line> &lines = plan.lines;
        const Line              &input = lines.front();
        _input                         = make(input.name, input.channels, input.kh, input.kw, nullptr);
        if(const Quant *q = quant_of(input.name)) // an 8-bit network: the float input converted once, first
        {
            const Tensor   to = make(input.name, input.channels, input.kh, input.kw, q);
            xnn_operator_t op = nullptr;
            check(xnn_create_convert_nc_f32_qs8(to.c, _input.stride, to.stride, q->scale, static_cast<int8_t>(q->zero), -128, 127, 0, &op),
                  input.name + " (quantize)");
            keep(op);
            check(xnn_setup_convert_nc_f32_qs8(op, to.h * to.w, _input.f32(), to.s8(), _pool), input.name + " (quantize)");
        }
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
            const Line  &line = lines[i];
            const Quant *oq   = quant_of(line.name); // this layer's output in 8 bits (else float32)
            // its input in the precision the layer runs in (8 bits in, 8 bits out, except the float layers)
            const Tensor in = oq != nullptr ? tensor(line.inputs[0]) : float_tensor(line.inputs[0]);
            if(oq != nullptr && in.quant == nullptr)
                throw peer::Error(line.name + ": an 8-bit layer reading a float32 tensor (only the input is converted)");
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
                    const Line  *concat = by_name.at(target->second.first);
                    const Line  *a = by_name.at(concat->inputs[0]), *b = by_name.at(concat->inputs[1]);
                    const Quant *cq = quant_of(concat->name);
                    if((cq == nullptr) != (oq == nullptr) || (cq != nullptr && (cq->scale != oq->scale || cq->zero != oq->zero)))
                        throw peer::Error(line.name + ": writes into " + concat->name + " but is quantized differently");
                    if(_tensors.count(concat->name) == 0)
                        make(concat->name, a->filters + b->filters, oh, ow, cq);
                    Tensor whole = _tensors.at(concat->name);
                    if(whole.h != oh || whole.w != ow)
                        throw peer::Error(concat->name + ": inputs of different heights or widths");
                    out = whole;
                    out.c = line.filters;
                    out.data += target->second.second * whole.element_size();
                    _tensors[line.name] = out;
                }
                else
                    out = make(line.name, line.filters, oh, ow, oq);
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
                xnn_operator_t op = nullptr;
                if(oq == nullptr)
                {
                    const auto clamp = bounds(line);
                    check(xnn_create_convolution2d_nhwc_f32(line.top, line.right, line.bottom, line.left, line.kh, line.kw,
                                                            line.sh, line.sw, 1, 1, line.groups, cg, og, in.stride, out.stride,
                                                            ohwi.data(), bias, clamp.first, clamp.second, 0, &op),
                          line.name);
                    keep(op);
                    check(xnn_setup_convolution2d_nhwc_f32(op, 1, in.h, in.w, in.f32(), out.f32(), _pool), line.name);
                }
                else
                {
                    // int8 weights per output channel at the plan's scales, int32 biases at input x weight scale
                    auto scales = _plan.wscale.find(line.name);
                    if(scales == _plan.wscale.end() || scales->second.size() != line.filters)
                        throw peer::Error(line.name + ": want one weight scale per output channel (wscale line)");
                    const std::vector<float> &ws = scales->second;
                    std::vector<int8_t>       kernel(count);
                    std::vector<int32_t>      ibias(line.filters);
                    const size_t              per_filter = count / line.filters;
                    for(size_t k = 0; k < count; ++k)
                        kernel[k] = static_cast<int8_t>(std::max(-127L, std::min(127L, std::lround(ohwi[k] / ws[k / per_filter]))));
                    for(size_t o = 0; o < line.filters; ++o)
                        ibias[o] = static_cast<int32_t>(std::lround(static_cast<double>(bias[o]) / (static_cast<double>(in.quant->scale) * ws[o])));
                    const auto clamp = bounds(line, *oq);
                    check(xnn_create_convolution2d_nhwc_qc8(line.top, line.right, line.bottom, line.left, line.kh, line.kw,
                                                            line.sh, line.sw, 1, 1, line.groups, cg, og, in.stride, out.stride,
                                                            static_cast<int8_t>(in.quant->zero), in.quant->scale, ws.data(),
                                                            kernel.data(), ibias.data(), static_cast<int8_t>(oq->zero), oq->scale,
                                                            clamp.first, clamp.second, 0, &op),
                          line.name);
                    keep(op);
                    check(xnn_setup_convolution2d_nhwc_qc8(op, 1, in.h, in.w, in.s8(), out.s8(), _pool), line.name);
                }
            }
            else if(line.kind == "maxpool" || line.kind == "avgpool")
            {
                const size_t oh = window_out(in.h, line.kh, line.sh, line.top, line.bottom, line.ceil);
                const size_t ow = window_out(in.w, line.kw, line.sw, line.left, line.right, line.ceil);
                // rounding up = extra rows/columns at the bottom/right, so XNNPACK's floor rule gives oh x ow
                const unsigned bottom = static_cast<unsigned>((oh - 1) * line.sh + line.kh - in.h - line.top);
                const unsigned right  = static_cast<unsigned>((ow - 1) * line.sw + line.kw - in.w - line.left);
                if(oq != nullptr && (line.kind != "maxpool" || oq->scale != in.quant->scale || oq->zero != in.quant->zero))
                    throw peer::Error(line.name + ": 8-bit pooling is exported only as max pooling keeping its input's quantization");
                const Tensor   out = make(line.name, in.c, oh, ow, oq);
                xnn_operator_t op  = nullptr;
                if(line.kind == "maxpool" && oq != nullptr)
                {
                    check(xnn_create_max_pooling2d_nhwc_s8(line.top, right, bottom, line.left, line.kh, line.kw, line.sh, line.sw,
                                                           1, 1, in.c, in.stride, out.stride, -128, 127, 0, &op),
                          line.name);
                    keep(op);
                    check(xnn_setup_max_pooling2d_nhwc_s8(op, 1, in.h, in.w, in.s8(), out.s8(), _pool), line.name);
                }
                else if(line.kind == "maxpool")
                {
                    check(xnn_create_max_pooling2d_nhwc_f32(line.top, right, bottom, line.left, line.kh, line.kw, line.sh,
                                                            line.sw, 1, 1, in.c, in.stride, out.stride, -kInf, kInf, 0, &op),
                          line.name);
                    keep(op);
                    check(xnn_setup_max_pooling2d_nhwc_f32(op, 1, in.h, in.w, in.f32(), out.f32(), _pool), line.name);
                }
                else
                {
                    if(line.top || line.left || bottom || right)
                        throw peer::Error(line.name + ": padded average pooling is not exported");
                    check(xnn_create_average_pooling2d_nhwc_f32(0, 0, 0, 0, line.kh, line.kw, line.sh, line.sw, in.c,
                                                                in.stride, out.stride, -kInf, kInf, 0, &op),
                          line.name);
                    keep(op);
                    check(xnn_setup_average_pooling2d_nhwc_f32(op, 1, in.h, in.w, in.f32(), out.f32(), _pool), line.name);
                }
            }
            else if(line.kind == "global_avgpool")
            {
                const Tensor   out = make(line.name, in.c, 1, 1, oq);
                xnn_operator_t op  = nullptr;
                if(oq != nullptr)
                {
                    check(xnn_create_global_average_pooling_nwc_qs8(in.c, in.stride, out.stride, static_cast<int8_t>(in.quant->zero),
                                                                    in.quant->scale, static_cast<int8_t>(oq->zero), oq->scale,
                                                                    -128, 127, 0, &op),
                          line.name);
                    keep(op);
                    check(xnn_setup_global_average_pooling_nwc_qs8(op, 1, in.h * in.w, in.s8(), out.s8(), _pool), line.name);
                }
                else
                {
                    check(xnn_create_global_average_pooling_nwc_f32(in.c, in.stride, out.stride, -kInf, kInf, 0, &op), line.name);
                    keep(op);
                    check(xnn_setup_global_average_pooling_nwc_f32(op, 1, in.h * in.w, in.f32(), out.f32(), _pool), line.name);
                }
            }
            else if(line.kind == "softmax")
            {
                if(oq != nullptr)
                    throw peer::Error(line.name + ": softmax runs in float32");
                if(in.h * in.w != 1)
                    throw peer::Error(line.name + ": softmax over more than one pixel");
                const Tensor   out = make(line.name, in.c, 1, 1, nullptr);
                xnn_operator_t op  = nullptr;
                check(xnn_create_softmax_nc_f32(in.c, in.stride, out.stride, 0, &op), line.name);
                keep(op);
                check(xnn_setup_softmax_nc_f32(op, 1, in.f32(), out.f32(), _pool), line.name);
            }
            else if(line.kind == "add")
            {
                const Tensor second = oq != nullptr ? tensor(line.inputs[1]) : float_tensor(line.inputs[1]);
                if(in.c != second.c || in.h != second.h || in.w != second.w || in.stride != in.c || second.stride != second.c)
                    throw peer::Error(line.name + ": inputs of different shapes (or inside a concatenation)");
                if(oq != nullptr && second.quant == nullptr)
                    throw peer::Error(line.name + ": an 8-bit addition of a float32 tensor");
                const Tensor   out      = make(line.name, in.c, in.h, in.w, oq);
                const size_t   shape[4] = { 1, in.h, in.w, in.c };
                xnn_operator_t op       = nullptr;
                if(oq != nullptr)
                {
                    const auto clamp = bounds(line, *oq);
                    check(xnn_create_add_nd_qs8(static_cast<int8_t>(in.quant->zero), in.quant->scale, static_cast<int8_t>(second.quant->zero),
                                                second.quant->scale, static_cast<int8_t>(oq->zero), oq->scale, clamp.first, clamp.second, 0, &op),
                          line.name);
                    keep(op);
                    check(xnn_setup_add_nd_qs8(op, 4, shape, 4, shape, in.s8(), second.s8(), out.s8(), _pool), line.name);
                }
                else
                {
                    const auto clamp = bounds(line);
                    check(xnn_create_add_nd_f32(clamp.first, clamp.second, 0, &op), line.name);
                    keep(op);
                    check(xnn_setup_add_nd_f32(op, 4, shape, 4, shape, in.f32(), second.f32(), out.f32(), _pool), line.name);
                }
            }
            else if(line.kind == "fc")
            {
                if(oq != nullptr)
                    throw peer::Error(line.name + ": fully connected layers run in float32 (our int8 engine's float tail)");
                if(in.h * in.w != 1)
                    throw peer::Error(line.name + ": fully connected on more than one pixel");
                const size_t count = static_cast<size_t>(line.filters) * in.c;
                if(used + count + line.filters > weights.size())
                    throw peer::Error("weight file too short at " + line.name);
                const Tensor   out   = make(line.name, line.filters, 1, 1, nullptr);
                const auto     clamp = bounds(line);
                xnn_operator_t op    = nullptr;
                check(xnn_create_fully_connected_nc_f32(in.c, line.filters, in.stride, out.stride, weights.data() + used,
                                                        weights.data() + used + count, clamp.first, clamp.second, 0, &op),
                      line.name);
                used += count + line.filters;
                keep(op);
                check(xnn_setup_fully_connected_nc_f32(op, 1, in.f32(), out.f32(), _pool), line.name);
            }
            else if(line.kind == "concat")
            {
                const Tensor second = oq != nullptr ? tensor(line.inputs[1]) : float_tensor(line.inputs[1]);
                if(in.h != second.h || in.w != second.w)
                    throw peer::Error(line.name + ": inputs of different heights or widths");
                if(_tensors.count(line.name) == 0) // not made by its convolutions: copy both halves in
                {
                    const Tensor out    = make(line.name, in.c + second.c, in.h, in.w, oq);
                    size_t       offset = 0;
                    for(const Tensor &part : { in, second })
                    {
                        if(oq != nullptr && (part.quant == nullptr || part.quant->scale != oq->scale || part.quant->zero != oq->zero))
                            throw peer::Error(line.name + ": an 8-bit concatenation of differently quantized tensors");
                        xnn_operator_t op = nullptr;
                        if(oq != nullptr)
                        {
                            check(xnn_create_copy_nc_x8(part.c, part.stride, out.stride, 0, &op), line.name);
                            keep(op);
                            check(xnn_setup_copy_nc_x8(op, part.h * part.w, part.s8(), out.s8() + offset, _pool), line.name);
                        }
                        else
                        {
                            check(xnn_create_copy_nc_x32(part.c, part.stride, out.stride, 0, &op), line.name);
                            keep(op);
                            check(xnn_setup_copy_nc_x32(op, part.h * part.w, part.f32(), out.f32() + offset, _pool), line.name);
                        }
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
    /** The last layer's output, NCHW, as float32. */
    std::vector<float> output() const
    {
        const Tensor       t = _tensors.at(_last);
        std::vector<float> out(t.c * t.h * t.w);
        for(size_t z = 0; z < t.c; ++z)
            for(size_t p = 0; p < t.h * t.w; ++p)
                out[z * t.h * t.w + p] = t.quant != nullptr ? t.quant->scale * static_cast<float>(t.s8()[p * t.stride + z] - t.quant->zero)
                                                            : t.f32()[p * t.stride + z];
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
    const Quant *quant_of(const std::string &name) const
    {
        auto found = _plan.quant.find(name);
        return found == _plan.quant.end() ? nullptr : &found->second;
    }
    Tensor tensor(const std::string &name) const
    {
        auto found = _tensors.find(name);
        if(found == _tensors.end())
            throw peer::Error("no earlier layer '" + name + "'");
        return found->second;
    }
    /** The tensor in float32: an 8-bit one converted once (QS8 -> F32) for the float layers that read it. */
    Tensor float_tensor(const std::string &name)
    {
        const Tensor t = tensor(name);
        if(t.quant == nullptr)
            return t;
        const std::string float_name = name + "#f32";
        if(_tensors.count(float_name) == 0)
        {
            const Tensor   to = make(float_name, t.c, t.h, t.w, nullptr);
            xnn_operator_t op = nullptr;
            check(xnn_create_convert_nc_qs8_f32(t.c, t.stride, to.stride, t.quant->scale, static_cast<int8_t>(t.quant->zero), 0, &op),
                  name + " (dequantize)");
            keep(op);
            check(xnn_setup_convert_nc_qs8_f32(op, t.h * t.w, t.s8(), to.f32(), _pool), name + " (dequantize)");
        }
        return _tensors.at(float_name);
    }
    Tensor make(const std::string &name, size_t c, size_t h, size_t w, const Quant *quant)
    {
        // XNNPACK may read up to XNN_EXTRA_BYTES past an input's end
        const size_t element = quant != nullptr ? 1 : sizeof(float);
        _buffers.emplace_back(c * h * w * element + XNN_EXTRA_BYTES, 0);
        const Tensor t{ c, h, w, _buffers.back().data(), c, quant };
        _tensors[name] = t;
        return t;
    }
    void keep(xnn_operator_t op)
    {
        _operators.push_back(op);
    }

    const Plan                       &_plan;
    pthreadpool_t                     _pool;
    std::vector<std::vector<uint8_t>> _buffers;
    std::map<std::string, Tensor>     _tensors;
    std::vector<xnn_operator_t>       _operators;
    Tensor                            _input;
    std::string                       _last;
    size_t                            _copy_free{ 0 };
};
} // namespace

int main(int argc, char **argv)
{
    return peer::guarded([&]
    {
        const peer::Options      options = peer::parse(argc, argv);
        const std::vector<float> nchw    = peer::read_floats(options.input, options.input_size());
        const std::vector<float> weights = peer::read_floats(options.weights, 0);
        const Plan               plan    = read_plan(options);
        const Line              &input   = plan.lines.front();
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
            Network                   network(plan, weights, pool);
            const std::vector<double> times  = peer::measure(options, [&] { network.run(nhwc); });
            const std::vector<float>  result = network.output();
            peer::write_floats(options.output, result.data(), result.size());
            char hex[16];
            std::snprintf(hex, sizeof hex, "\"0x%08x\"", uarch);
            peer::report(times, { "\"operators\": " + std::to_string(network.operators()),
                                  "\"copy_free_concats\": " + std::to_string(network.copy_free_concats()),
                                  "\"int8_tensors\": " + std::to_string(plan.quant.size()),
                                  "\"uarch\": " + std::string(hex) });
        }
        if(pool != nullptr)
            pthreadpool_destroy(pool);
    });
}
