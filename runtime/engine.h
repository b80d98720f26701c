// The contract between a generated network (build/<target>/<model>/<model>.cpp) and the hand-written runtime
// (command line, weight loading, timing). Each generated file defines make_network().
#pragma once

#include "arm_compute/core/Error.h"
#include "arm_compute/core/TensorInfo.h"
#include "arm_compute/runtime/IFunction.h"
#include "arm_compute/runtime/Tensor.h"

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace engine
{
/** Anything that stops the engine: the message is printed as is, so it names the file or the layer. */
class Error : public std::runtime_error
{
public:
    using std::runtime_error::runtime_error;
};

/** Throws an Error naming the layer when ACL's validate() refuses its configuration. */
void require(const arm_compute::Status &status, const char *layer, const char *function);

/** A tensor description in another data layout than ACL's default (NCHW): the generated code spells NHWC tensors
 *  as engine::with_layout(TensorInfo(...), DataLayout::NHWC). */
inline arm_compute::TensorInfo with_layout(arm_compute::TensorInfo info, arm_compute::DataLayout layout)
{
    info.set_data_layout(layout);
    return info;
}

/** A trained tensor: its name and dimensions in the weight file (OIHW for convolutions) and where it goes. */
struct WeightBinding
{
    const char               *name;
    std::vector<unsigned int> dims;
    arm_compute::Tensor      *tensor;
};

/** One ACL function of the network, timed on its own; the group follows the paper's breakdown. */
struct Layer
{
    const char             *name;
    const char             *group;
    arm_compute::IFunction *function;
};

class Network
{
public:
    virtual ~Network() = default;
    virtual const char *name() const = 0;
    /** True when the network ends with a softmax; otherwise its outputs are raw scores (logits). */
    virtual bool output_is_probabilities() const = 0;
    /** Validates and configures every function once, then allocates every tensor. */
    virtual void configure() = 0;
    virtual std::vector<WeightBinding> weights() = 0;
    virtual std::vector<Layer> layers() = 0;
    virtual arm_compute::ITensor &input() = 0;
    virtual arm_compute::ITensor &output() = 0;
    /** Bytes of the pool that holds every activation between layers (laid out by lifetime). */
    virtual size_t activation_pool_bytes() const = 0;
};

std::unique_ptr<Network> make_network();

/** Our kernels' threading: [0, count) cut into one contiguous part per scheduler thread (no more parts than
 *  items), work(first, end) run on each through ACL's scheduler under the tag. */
void split(size_t count, const char *tag, const std::function<void(size_t, size_t)> &work);
/** The same with at most max_parts parts, work(first, end, part) told its part's index in [0, max_parts): for a
 *  kernel with one scratch buffer per part, allocated at configure for the thread count then (the parts of one
 *  call run at the same time, each on its own buffer; fewer parts if the thread count has grown since). */
void split(size_t count, size_t max_parts, const char *tag, const std::function<void(size_t, size_t, size_t)> &work);
} // namespace engine
