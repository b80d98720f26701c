// Dense float32 buffers in and out of ACL tensors, whose rows may carry padding.
#pragma once

#include "arm_compute/core/ITensor.h"

#include <vector>

namespace engine
{
void copy_into(arm_compute::ITensor &tensor, const float *data);
/** Dense values of the tensor's own element type (weights of any precision). */
void copy_bytes_into(arm_compute::ITensor &tensor, const uint8_t *data);
std::vector<float> copy_out(const arm_compute::ITensor &tensor);

/** Reads one or more tensors of `count` floats (a batch along N); any other size is an error naming the file. */
std::vector<float> read_floats(const std::string &path, size_t count, const char *what);
void write_floats(const std::string &path, const std::vector<float> &values);
} // namespace engine
