// Turning a TensorInfo's bytes into f32 values, a range of rows at a time, in logical (Hugging
// Face) row order whatever the file format did to them. Nothing here reads more than it is asked
// for: callers stream a tensor through a fixed-size buffer, so a 500B-parameter model passes
// through a 24 GiB machine.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "io/tensor.h"

namespace referee::io {

// How a tensor divides into rows for reading: all dimensions but the innermost form the rows,
// except that a permuted 1-D tensor (a GGUF Q/K bias) is read element by element.
struct RowGeometry {
  int64_t rows = 0;
  int64_t row_length = 0;
};
RowGeometry row_geometry(const TensorInfo& t);

// Copies bytes [offset, offset + out.size()) of the tensor's raw data (pread from its file, or
// from memory for tensors parsed from a buffer).
void read_tensor_bytes(const TensorInfo& t, uint64_t offset, std::span<uint8_t> out);

// Decodes rows [first_row, first_row + n_rows) into `out` (n_rows * row_length floats).
// Throws Error (kNotSupported) if the dtype has no decoder, kInvalidArgument for a bad range.
void read_rows_f32(const TensorInfo& t, int64_t first_row, int64_t n_rows, float* out);

// Calls `fn(first_row, values)` for consecutive chunks of whole rows, each about `chunk_elems`
// elements (at least one row), reusing `scratch` as the buffer. Chunks of 64-128 Ki elements keep
// the raw and decoded data in the CPU cache; much larger ones are slower.
void for_each_chunk_f32(const TensorInfo& t, uint64_t chunk_elems, std::vector<float>& scratch,
                        const std::function<void(int64_t first_row, std::span<const float>)>& fn);

// As for_each_chunk_f32, and passes the tensor's raw bytes, in stored order and in full, to
// `raw_bytes` on the way: one read serves both a content hash and the decoded values. Requires a
// tensor without a row permutation whose dtype decodes (can_convert_to_f32).
void for_each_chunk_f32_and_bytes(const TensorInfo& t, uint64_t chunk_elems, std::vector<float>& scratch,
                                  const std::function<void(std::span<const uint8_t>)>& raw_bytes,
                                  const std::function<void(int64_t first_row, std::span<const float>)>& fn);

// The whole tensor as f32 — for tensors known to be small (norms, test fixtures).
std::vector<float> read_all_f32(const TensorInfo& t);

}  // namespace referee::io
