#include "activation_arena.h"

#include "engine.h"

#include <algorithm>

namespace engine
{
namespace
{
constexpr size_t alignment = 64; // a cache line; more than any NEON load needs

size_t aligned(size_t value)
{
    return (value + alignment - 1) / alignment * alignment;
}
} // namespace

void ActivationArena::add(arm_compute::Tensor &tensor, const char *name, size_t first_layer, size_t last_layer)
{
    _entries.push_back(Entry{ &tensor, name, first_layer, last_layer, 0, 0 });
}

void ActivationArena::allocate()
{
    for(Entry &e : _entries)
    {
        e.size = aligned(e.tensor->info()->total_size());
    }
    std::vector<Entry *> by_size;
    for(Entry &e : _entries)
    {
        by_size.push_back(&e);
    }
    std::stable_sort(by_size.begin(), by_size.end(), [](const Entry *a, const Entry *b) { return a->size > b->size; });

    // Largest first: each goes into the lowest gap between the already placed tensors alive at the same time.
    std::vector<const Entry *> placed;
    for(Entry *e : by_size)
    {
        std::vector<const Entry *> overlapping;
        for(const Entry *p : placed)
        {
            if(p->first <= e->last && e->first <= p->last)
            {
                overlapping.push_back(p);
            }
        }
        std::sort(overlapping.begin(), overlapping.end(), [](const Entry *a, const Entry *b) { return a->offset < b->offset; });
        size_t offset = 0;
        for(const Entry *p : overlapping)
        {
            if(p->offset >= offset + e->size)
            {
                break;
            }
            offset = std::max(offset, p->offset + p->size);
        }
        e->offset = offset;
        _bytes    = std::max(_bytes, offset + e->size);
        placed.push_back(e);
    }

    _buffer.reset(new uint8_t[_bytes + alignment]);
    uint8_t *base = _buffer.get() + (alignment - reinterpret_cast<uintptr_t>(_buffer.get()) % alignment) % alignment;
    for(Entry &e : _entries)
    {
        require(e.tensor->allocator()->import_memory(base + e.offset), e.name, "TensorAllocator::import_memory");
    }
}
} // namespace engine
