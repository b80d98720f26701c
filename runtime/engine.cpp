#include "engine.h"

namespace engine
{
void require(const arm_compute::Status &status, const char *layer, const char *function)
{
    if(!bool(status))
    {
        throw Error(std::string("layer '") + layer + "': ACL's " + function + " refuses this configuration: " + status.error_description());
    }
}
} // namespace engine
