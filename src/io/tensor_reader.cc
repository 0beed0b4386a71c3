#include "io/tensor_reader.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "io/convert.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace referee::io {

RowGeometry row_geometry(const TensorInfo& t) {
  if (t.row_permutation.active() && t.shape.size() == 1) return {t.shape[0], 1};
  return {t.rows(), t.row_length()};
}

void read_tensor_bytes(const TensorInfo& t, uint64_t offset, std::span<uint8_t> out) {
  if (offset > t.byte_size || out.size() > t.byte_size - offset) {
    throw Error::invalid_argument(t.name, fmt::format("bytes {}..{} requested of {}", offset,
                                                      offset + out.size(), t.byte_size));
  }
  if (out.empty()) return;
  if (t.file != nullptr) {
    t.file->read_at(t.file_offset + offset, out);
  } else {
    std::memcpy(out.data(), t.data + offset, out.size());
  }
}

namespace {
// Raw bytes are staged in a per-thread buffer that callers keep small (a chunk of rows), so it
// stays in the CPU cache between the read and the conversion.
std::vector<uint8_t>& staging_buffer() {
  thread_local std::vector<uint8_t> buffer;
  return buffer;
}
}  // namespace

void read_rows_f32(const TensorInfo& t, int64_t first_row, int64_t n_rows, float* out) {
  const auto g = row_geometry(t);
  if (first_row < 0 || n_rows < 0 || first_row > g.rows || n_rows > g.rows - first_row) {
    throw Error::invalid_argument(
        t.name, fmt::format("rows {}..{} requested of a tensor with {} rows", first_row,
                            first_row + n_rows, g.rows));
  }
  if (n_rows == 0 || g.row_length == 0) return;
  if (!can_convert_to_f32(t.dtype)) {
    throw Error::not_supported(t.name, fmt::format("decoding {} tensors", dtype_name(t.dtype)));
  }
  // Rows are whole blocks (checked when the file was parsed), so a row's bytes are exact.
  const uint64_t row_bytes = *dtype_bytes(t.dtype, static_cast<uint64_t>(g.row_length));
  auto& stage = staging_buffer();
  if (!t.row_permutation.active()) {
    stage.resize(static_cast<size_t>(n_rows * row_bytes));
    read_tensor_bytes(t, first_row * row_bytes, stage);
    convert_to_f32(t.dtype, stage.data(), static_cast<uint64_t>(n_rows) * g.row_length, out);
    return;
  }
  stage.resize(row_bytes);
  for (int64_t r = 0; r < n_rows; ++r) {
    const int64_t stored = t.row_permutation.stored_row(first_row + r, g.rows);
    read_tensor_bytes(t, stored * row_bytes, stage);
    convert_to_f32(t.dtype, stage.data(), g.row_length, out + r * g.row_length);
  }
}

void for_each_chunk_f32(const TensorInfo& t, uint64_t chunk_elems, std::vector<float>& scratch,
                        const std::function<void(int64_t, std::span<const float>)>& fn) {
  const auto g = row_geometry(t);
  if (g.rows == 0 || g.row_length == 0) return;
  const int64_t rows_per_chunk =
      std::max<int64_t>(1, static_cast<int64_t>(chunk_elems / static_cast<uint64_t>(g.row_length)));
  scratch.resize(static_cast<size_t>(std::min(rows_per_chunk, g.rows) * g.row_length));
  for (int64_t first = 0; first < g.rows; first += rows_per_chunk) {
    const int64_t n = std::min(rows_per_chunk, g.rows - first);
    read_rows_f32(t, first, n, scratch.data());
    fn(first, std::span<const float>(scratch.data(), static_cast<size_t>(n * g.row_length)));
  }
}

void for_each_chunk_f32_and_bytes(const TensorInfo& t, uint64_t chunk_elems, std::vector<float>& scratch,
                                  const std::function<void(std::span<const uint8_t>)>& raw_bytes,
                                  const std::function<void(int64_t, std::span<const float>)>& fn) {
  if (t.row_permutation.active() || !can_convert_to_f32(t.dtype)) {
    throw Error::invalid_argument(t.name, "raw bytes and values in one pass need unpermuted rows of a decodable dtype");
  }
  const auto g = row_geometry(t);
  if (g.rows == 0 || g.row_length == 0) {
    std::vector<uint8_t> all(static_cast<size_t>(t.byte_size));
    read_tensor_bytes(t, 0, all);
    raw_bytes(all);
    return;
  }
  const uint64_t row_bytes = *dtype_bytes(t.dtype, static_cast<uint64_t>(g.row_length));
  const int64_t rows_per_chunk =
      std::max<int64_t>(1, static_cast<int64_t>(chunk_elems / static_cast<uint64_t>(g.row_length)));
  scratch.resize(static_cast<size_t>(std::min(rows_per_chunk, g.rows) * g.row_length));
  auto& stage = staging_buffer();
  for (int64_t first = 0; first < g.rows; first += rows_per_chunk) {
    const int64_t n = std::min(rows_per_chunk, g.rows - first);
    if (t.dtype == DType::kF32 && std::endian::native == std::endian::little) {
      // The stored bytes are the values: read them straight into `scratch`, no conversion copy.
      const std::span<uint8_t> bytes(reinterpret_cast<uint8_t*>(scratch.data()), static_cast<size_t>(static_cast<uint64_t>(n) * row_bytes));
      read_tensor_bytes(t, static_cast<uint64_t>(first) * row_bytes, bytes);
      raw_bytes(bytes);
      fn(first, std::span<const float>(scratch.data(), static_cast<size_t>(n * g.row_length)));
      continue;
    }
    stage.resize(static_cast<size_t>(static_cast<uint64_t>(n) * row_bytes));
    read_tensor_bytes(t, static_cast<uint64_t>(first) * row_bytes, stage);
    raw_bytes(stage);
    convert_to_f32(t.dtype, stage.data(), static_cast<uint64_t>(n) * g.row_length, scratch.data());
    fn(first, std::span<const float>(scratch.data(), static_cast<size_t>(n * g.row_length)));
  }
  // Bytes past the last whole row (none for valid files: rows are whole blocks), for a full hash.
  const uint64_t covered = static_cast<uint64_t>(g.rows) * row_bytes;
  if (covered < t.byte_size) {
    stage.resize(static_cast<size_t>(t.byte_size - covered));
    read_tensor_bytes(t, covered, stage);
    raw_bytes(stage);
  }
}

std::vector<float> read_all_f32(const TensorInfo& t) {
  std::vector<float> out(t.elements);
  const auto g = row_geometry(t);
  read_rows_f32(t, 0, g.rows, out.data());
  return out;
}

}  // namespace referee::io
