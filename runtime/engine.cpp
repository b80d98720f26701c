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
    const size_t                                  threads = std::max<size_t>(1, std::min<size_t>(arm_compute::NEScheduler::get().num_threads(), count));
    std::vector<arm_compute::IScheduler::Workload> workloads;
    for(size_t t = 0; t < threads; ++t)
    {
        const size_t first = count * t / threads, end = count * (t + 1) / threads;
        workloads.emplace_back([&work, first, end](const arm_compute::ThreadInfo &) { work(first, end); });
    }
    arm_compute::NEScheduler::get().run_tagged_workloads(workloads, tag);
}
} // namespace engine
