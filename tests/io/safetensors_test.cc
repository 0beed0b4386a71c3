// The safetensors reader and writer: every dtype round-trips, sharded directories read back with
// their index, and every kind of malformed header is refused with a message naming the problem.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "io/convert.h"
#include "io/model.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "io/tensor_reader.h"
#include "testing/helpers.h"
#include "util/error.h"

namespace referee::io {
namespace {
using testing::TempDir;

// Builds a safetensors file from a header JSON text and a data section, byte by byte, so tests
// can write files the writer would never produce.
std::vector<uint8_t> raw_safetensors(const std::string& header, size_t data_bytes,
                                     uint64_t declared_length = UINT64_MAX) {
  std::vector<uint8_t> bytes(8 + header.size() + data_bytes, 0);
  const uint64_t length = declared_length == UINT64_MAX ? header.size() : declared_length;
  std::memcpy(bytes.data(), &length, 8);
  std::memcpy(bytes.data() + 8, header.data(), header.size());
  return bytes;
}

std::string safetensors_error(const std::vector<uint8_t>& bytes) {
  try {
    parse_safetensors(bytes, "bad.safetensors");
  } catch (const Error& e) {
    return e.message();
  }
  return "(no error)";
}

TEST(Safetensors, EveryDtypeRoundTrips) {
  TempDir dir;
  const std::vector<float> values = {0.0f, 1.0f, -2.0f, 3.0f, 100.0f, -0.5f, 7.0f, 1.0f};
  std::vector<TensorToWrite> tensors;
  const std::vector<DType> dtypes = {DType::kF64, DType::kF32, DType::kF16, DType::kBF16,
                                     DType::kF8_E4M3, DType::kF8_E5M2, DType::kI64, DType::kI32,
                                     DType::kI16, DType::kI8, DType::kU64, DType::kU32,
                                     DType::kU16, DType::kU8, DType::kBool};
  for (auto d : dtypes) {
    std::vector<float> v = values;
    if (d == DType::kU8 || d == DType::kU16 || d == DType::kU32 || d == DType::kU64) {
      for (auto& x : v) x = std::fabs(x);
    }
    tensors.push_back({std::string("t_") + std::string(dtype_name(d)), d, {2, 4},
                       TensorData::values(values)});
  }
  write_safetensors(dir / "all.safetensors", tensors, {{"format", "pt"}, {"note", "test"}});
  std::shared_ptr<const MappedFile> mapping;
  auto header = open_safetensors(dir / "all.safetensors", mapping);
  ASSERT_EQ(header.tensors.size(), dtypes.size());
  EXPECT_EQ(header.metadata.size(), 2u);
  EXPECT_EQ(header.metadata[0].first, "format");
  EXPECT_TRUE(header.warnings.empty());
  EXPECT_EQ(header.data_start % 8, 0u) << "the writer pads the header to 8 bytes";
  for (const auto& t : header.tensors) {
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 4}));
    EXPECT_EQ(t.elements, 8u);
    auto got = read_all_f32(t);
    for (size_t i = 0; i < values.size(); ++i) {
      float expected = values[i];
      if (t.dtype == DType::kBool) expected = values[i] != 0 ? 1.0f : 0.0f;
      if (t.dtype == DType::kU8 || t.dtype == DType::kU16 || t.dtype == DType::kU32 ||
          t.dtype == DType::kU64) {
        expected = values[i] < 0 ? 0.0f : values[i];  // unsigned saturates at zero
      }
      if (t.dtype == DType::kF8_E4M3 || t.dtype == DType::kF8_E5M2) {
        EXPECT_NEAR(got[i], expected, std::fabs(expected) * 0.125 + 1e-6) << i;
      } else if (t.dtype == DType::kI8 || t.dtype == DType::kI16 || t.dtype == DType::kI32 ||
                 t.dtype == DType::kI64) {
        EXPECT_EQ(got[i], std::nearbyint(expected)) << i;
      } else {
        EXPECT_EQ(got[i], expected) << i;
      }
    }
  }
}

TEST(Safetensors, ShardedDirectoryReadsBackThroughItsIndex) {
  TempDir dir;
  testing::TinyLlama llama;
  llama.build(DType::kBF16, 1);
  const auto shards = write_sharded_safetensors(dir.path(), llama.tensors, 20000);
  EXPECT_GT(shards.size(), 2u);
  testing::write_text(dir / "config.json", llama.config_json());
  const auto model = Model::open(dir.path());
  EXPECT_EQ(model.files.size(), shards.size());
  EXPECT_EQ(model.tensors.size(), llama.tensors.size());
  EXPECT_TRUE(model.warnings.empty()) << model.warnings.front();
  const auto* q = model.find("model.layers.1.self_attn.q_proj.weight");
  ASSERT_NE(q, nullptr);
  const auto values = read_all_f32(*q);
  // Index of q_proj in layer 1: 1 (embedding) + 9 (layer 0) + 1 (norm) = 11.
  const auto& original = llama.values[11];
  ASSERT_EQ(values.size(), original.size());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_NEAR(values[i], original[i], std::fabs(original[i]) / 128) << i;  // bf16: 8 bits
  }
}

TEST(Safetensors, MissingShardIsNamed) {
  TempDir dir;
  testing::TinyLlama llama;
  llama.build(DType::kF32, 2);
  const auto shards = write_sharded_safetensors(dir.path(), llama.tensors, 20000);
  std::filesystem::remove(dir / shards[1]);
  try {
    Model::open(dir.path());
    FAIL() << "a missing shard must be an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotFound);
    EXPECT_NE(e.message().find(shards[1]), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("shard listed in model.safetensors.index.json"), std::string::npos);
  }
}

TEST(Safetensors, IndexMayNotPointOutsideTheDirectory) {
  TempDir dir;
  testing::write_text(dir / "model.safetensors.index.json",
                      R"({"weight_map": {"w": "../../etc/passwd"}})");
  try {
    Model::open(dir.path());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("not a file name inside the model directory"), std::string::npos)
        << e.message();
  }
}

struct MalformedCase {
  const char* label;
  std::vector<uint8_t> bytes;
  const char* expected;
};

TEST(Safetensors, MalformedHeadersAreRefusedWithAClearMessage) {
  const std::string ok_entry = R"("w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]})";
  std::vector<MalformedCase> cases = {
      {"truncated before the length", {1, 2, 3}, "too short for a safetensors header"},
      {"length past the end", raw_safetensors("{}", 0, 1000), "runs past the end of the file"},
      {"length above the format limit",
       [] {
         auto b = raw_safetensors("{}", 0, (100ull << 20) + 1);
         b.resize((100ull << 20) + 16, ' ');
         return b;
       }(),
       "exceeds the format's limit"},
      {"not JSON", raw_safetensors("{\"w\": [", 0), "invalid JSON"},
      {"not an object", raw_safetensors("[1, 2]", 0), "does not start with a JSON object"},
      {"unknown dtype",
       raw_safetensors(R"({"w": {"dtype": "F7", "shape": [1], "data_offsets": [0, 1]}})", 1),
       "unknown dtype 'F7'"},
      {"offsets past the data", raw_safetensors("{" + ok_entry + "}", 8),
       "past the end of the data (8 bytes)"},
      {"begin after end",
       raw_safetensors(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", 8),
       "begin after end"},
      {"size disagrees with shape",
       raw_safetensors(R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8),
       "= 12 bytes, but its data_offsets span 8 bytes"},
      {"overlap",
       raw_safetensors(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                           "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                       12),
       "overlap"},
      {"duplicate name", raw_safetensors("{" + ok_entry + ", " + ok_entry + "}", 16),
       "appears twice"},
      {"overflowing shape",
       raw_safetensors(
           R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 4]}})",
           4),
       "overflows 64 bits"},
      {"bytes overflow",
       raw_safetensors(
           R"({"w": {"dtype": "F64", "shape": [4611686018427387904], "data_offsets": [0, 8]}})",
           8),
       "overflow 64 bits"},
      {"negative dimension",
       raw_safetensors(R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4),
       "must be a non-negative integer"},
      {"non-UTF-8 name", raw_safetensors("{\"w\xff\": {}}", 0), "UTF-8"},
      {"unknown field",
       raw_safetensors(
           R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "scale": 2}})", 4),
       "unknown field 'scale'"},
      {"missing field", raw_safetensors(R"({"w": {"dtype": "F32", "shape": [1]}})", 4),
       "lacks data_offsets"},
      {"metadata not strings", raw_safetensors(R"({"__metadata__": {"a": 1}})", 0),
       "must be a string"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    const std::string message = safetensors_error(c.bytes);
    EXPECT_NE(message.find(c.expected), std::string::npos) << message;
    EXPECT_NE(message.find("bad.safetensors"), std::string::npos) << message;
  }
}

TEST(Safetensors, UncoveredBytesAreAWarningNotAnError) {
  auto bytes = raw_safetensors(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 12);
  const auto header = parse_safetensors(bytes, "gap.safetensors");
  ASSERT_EQ(header.warnings.size(), 1u);
  EXPECT_NE(header.warnings[0].find("8 bytes of the data section belong to no tensor"),
            std::string::npos)
      << header.warnings[0];
}

TEST(Safetensors, ZeroSizedTensorsAreValid) {
  auto bytes = raw_safetensors(
      R"({"e": {"dtype": "F32", "shape": [0, 5], "data_offsets": [0, 0]},
          "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 4);
  const auto header = parse_safetensors(bytes, "zero.safetensors");
  EXPECT_EQ(header.tensors.size(), 2u);
}

}  // namespace
}  // namespace referee::io
