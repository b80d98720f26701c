// The engine's weight file, written by neoncc (neoncc/weights/engine_format.py) next to the binary:
//   "NCCWGHTS" | u32 version | u32 tensor count | per tensor: u32 name length, name, u32 rank, u32 dims[rank],
//   u32 element type | data of every tensor, in table order | u32 CRC-32 (zlib's) of all preceding bytes.
// Element types: 0 float32, 1 int8 (per-channel quantized weights), 2 int32 (quantized biases), 3 uint8 (QASYMM8).
// All integers and floats little-endian. Loading checks each part and names the first one that is wrong.
#pragma once

#include "engine.h"

#include <string>
#include <vector>

namespace engine
{
constexpr char     kWeightMagic[8]     = {'N', 'C', 'C', 'W', 'G', 'H', 'T', 'S'};
constexpr uint32_t kWeightFileVersion = 2;

/** Checks the file against what the network expects and copies every tensor into place. */
void load_weights(const std::string &path, const std::vector<WeightBinding> &bindings);
} // namespace engine
