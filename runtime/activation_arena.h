// Activations between layers in one buffer, each at an offset planned from the lifetimes the generator knows
// (greedy by size, as TFLite's arena planner does). ACL's OffsetLifetimeManager places blobs first-fit in the
// order they are released and left gaps that cost SqueezeNet v1.0 1.35x the largest live set.
#pragma once

#include "arm_compute/runtime/Tensor.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace engine
{
class ActivationArena
{
public:
    /** A tensor alive from the layer that first writes it to the last layer that reads it (both inclusive). */
    void add(arm_compute::Tensor &tensor, const char *name, size_t first_layer, size_t last_layer);
    /** Called once every function is configured (so each tensor's padding is final): plans the offsets, makes
     * the buffer and hands each tensor its place. */
    void allocate();
    size_t bytes() const
    {
        return _bytes;
    }

private:
    struct Entry
    {
        arm_compute::Tensor *tensor;
        const char          *name;
        size_t               first, last, size, offset;
    };
    std::vector<Entry>         _entries;
    std::unique_ptr<uint8_t[]> _buffer;
    size_t                     _bytes{ 0 };
};
} // namespace engine
