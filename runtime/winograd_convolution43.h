// engine::WinogradConvolution with F(4x4, 3x3): 6x6 input tiles, 36 matrix products per tile of 16 outputs. Fewer
// outputs are computed past the edge of a small image than with F(6x6, 3x3): SqueezeNet's 14 x 14 layers need 16
// tiles of 4 x 4 (256 outputs, 4 whole panels of 4 tiles) instead of 9 tiles of 6 x 6 (324 outputs in 3 panels
// with 3 empty tiles), so the products cost 36 x 4 panels against 64 x 3. Which one a layer runs is measured
// (`bench tune`: methods winograd43 and winograd63).
#pragma once

#include "winograd_convolution.h"

#include <utility>

namespace engine
{
class WinogradConvolution43 : public WinogradConvolution
{
public:
    explicit WinogradConvolution43(std::shared_ptr<arm_compute::IMemoryManager> memory_manager = nullptr)
        : WinogradConvolution(std::move(memory_manager), 4)
    {
    }
};
} // namespace engine
