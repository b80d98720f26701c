#include "engine.h"

#include "arm_compute/runtime/NEON/NEScheduler.h"

#include <algorithm>

namespace engine
{
void require(const arm_compute::Status &status, const char *layer, const char *function)
{
    if(!bool(status))
    {
        throw Error(std::string("layer '") + layer + "': ACL's " + function + " refuses this configuration: " + status.error_description());
    }
}

void split(size_t count, const char *tag, const std::function<void(size_t, size_t)> &work)
{
    split(count, count, tag, [&work](size_t first, size_t end, size_t) { work(first, end); });
}

void split(size_t count, size_t max_parts, const char *tag, const std::function<void(size_t, size_t, size_t)> &work)
{
    const size_t parts = std::max<size_t>(1, std::min<size_t>({ arm_compute::NEScheduler::get().num_threads(), count, max_parts }));
    std::vector<arm_compute::IScheduler::Workload> workloads;
    for(size_t t = 0; t < parts; ++t)
    {
        const size_t first = count * t / parts, end = count * (t + 1) / parts;
        workloads.emplace_back([&work, first, end, t](const arm_compute::ThreadInfo &) { work(first, end, t); });
    }
    arm_compute::NEScheduler::get().run_tagged_workloads(workloads, tag);
}
} // namespace engine
