// The GGUF reader and writer: every metadata value type round-trips, tensors of every writable
// type decode to their values, llama.cpp's Q/K row permutation is undone, and malformed files are
// refused with a message naming the problem — never a crash or a huge allocation.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "io/convert.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "io/model.h"
#include "io/tensor_reader.h"
#include "testing/helpers.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace referee::io {
namespace {
using testing::TempDir;

// Appends little-endian GGUF pieces, for files the writer would never produce.
struct Bytes {
  std::vector<uint8_t> b;
  template <typename T>
  Bytes& put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
    return *this;
  }
  Bytes& str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& header(uint64_t tensors, uint64_t kvs, uint32_t version = 3) {
    b.insert(b.end(), {'G', 'G', 'U', 'F'});
    return put(version).put(tensors).put(kvs);
  }
  Bytes& pad_to(size_t alignment) {
    b.resize((b.size() + alignment - 1) / alignment * alignment, 0);
    return *this;
  }
};

std::string gguf_error(const std::vector<uint8_t>& bytes) {
  try {
    parse_gguf(bytes, "bad.gguf");
  } catch (const Error& e) {
    return e.message();
  }
  return "(no error)";
}

TEST(Gguf, EveryMetadataTypeRoundTrips) {
  TempDir dir;
  GgufWriter w(64);
  w.set_uint8("t.u8", 200);
  w.set_int8("t.i8", -100);
  w.set_uint16("t.u16", 60000);
  w.set_int16("t.i16", -30000);
  w.set_uint32("t.u32", 4000000000u);
  w.set_int32("t.i32", -2000000000);
  w.set_uint64("t.u64", 18000000000000000000ull);
  w.set_int64("t.i64", -9000000000000000000ll);
  w.set_float32("t.f32", 1.5f);
  w.set_float64("t.f64", -2.25);
  w.set_bool("t.bool", true);
  w.set_string("t.str", "한국어 text");
  w.set_string_array("t.strs", {"a", "", "tokens with spaces"});
  const std::vector<float> floats = {1, 2, 3};
  w.set_float32_array("t.f32s", floats);
  const std::vector<int32_t> ints = {-1, 0, 7};
  w.set_int32_array("t.i32s", ints);
  const uint8_t bools[] = {1, 0, 1};
  w.set_raw_array("t.bools", GgufType::kBool, 3, bools);
  w.write(dir / "meta.gguf");

  auto file = MappedFile::open(dir / "meta.gguf");
  const auto g = parse_gguf(file->bytes(), "meta.gguf");
  EXPECT_EQ(g.version, 3u);
  EXPECT_EQ(g.alignment, 64u);
  EXPECT_EQ(g.find("t.u8")->as_int(), 200);
  EXPECT_EQ(g.find("t.i8")->as_int(), -100);
  EXPECT_EQ(g.find("t.u16")->as_int(), 60000);
  EXPECT_EQ(g.find("t.i16")->as_int(), -30000);
  EXPECT_EQ(g.find("t.u32")->as_int(), 4000000000ll);
  EXPECT_EQ(g.find("t.i32")->as_int(), -2000000000);
  EXPECT_EQ(g.find("t.u64")->unsigned_integer, 18000000000000000000ull);
  EXPECT_FALSE(g.find("t.u64")->as_int()) << "does not fit int64";
  EXPECT_EQ(g.find("t.i64")->as_int(), -9000000000000000000ll);
  EXPECT_EQ(g.find("t.f32")->as_double(), 1.5);
  EXPECT_EQ(g.find("t.f64")->as_double(), -2.25);
  EXPECT_EQ(g.find("t.bool")->summary(), "true");
  EXPECT_EQ(g.find("t.str")->as_string(), "한국어 text");
  EXPECT_EQ(*g.find("t.strs")->strings(),
            (std::vector<std::string_view>{"a", "", "tokens with spaces"}));
  EXPECT_EQ(*g.find("t.f32s")->numbers(), (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(*g.find("t.i32s")->numbers(), (std::vector<double>{-1, 0, 7}));
  EXPECT_EQ(*g.find("t.bools")->numbers(), (std::vector<double>{1, 0, 1}));
  EXPECT_EQ(g.find("t.strs")->summary(), "[3 x string]");
}

TEST(Gguf, TensorsOfEveryWritableTypeDecode) {
  TempDir dir;
  const auto values = testing::normal_values(4 * 512, 7);
  GgufWriter w;
  w.set_string("general.architecture", "test");
  const std::vector<std::pair<DType, double>> types = {
      {DType::kF32, 0},        {DType::kF16, 1e-3},    {DType::kBF16, 8e-3},
      {DType::kQ8_0, 1e-2},    {DType::kQ4_0, 0.2},    {DType::kQ4_K, 0.15},
      {DType::kQ5_K, 0.08},    {DType::kQ6_K, 0.04}};
  for (const auto& [type, tolerance] : types) {
    w.add_tensor({std::string("w.") + std::string(dtype_name(type)), type, {4, 512},
                  TensorData::values(values)});
  }
  w.write(dir / "types.gguf");
  const auto model = Model::open(dir / "types.gguf");
  ASSERT_EQ(model.tensors.size(), types.size());
  for (size_t i = 0; i < types.size(); ++i) {
    const auto& t = model.tensors[i];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.dtype, types[i].first);
    EXPECT_EQ(t.shape, (std::vector<int64_t>{4, 512})) << "row-major, as written";
    EXPECT_EQ(t.file_offset % 32, 0u);
    const auto got = read_all_f32(t);
    double worst = 0;
    for (size_t k = 0; k < values.size(); ++k) worst = std::max(worst, std::fabs(got[k] - values[k]) * 1.0);
    EXPECT_LE(worst, types[i].second * 4) << "worst absolute error " << worst;
  }
}

// llama.cpp's converter applies, to Q and K of llama models, the numpy expression
//   w.reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2).reshape(rows, cols)
// Written out here element by element, independently of the reader's RowPermutation.
std::vector<float> llama_cpp_permute(const std::vector<float>& w, int64_t rows, int64_t cols,
                                     int64_t heads) {
  std::vector<float> out(w.size());
  const int64_t half = rows / heads / 2;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t two = 0; two < 2; ++two)
      for (int64_t i = 0; i < half; ++i)
        for (int64_t c = 0; c < cols; ++c) {
          // source index [h][two][i][c] lands at [h][i][two][c]
          const int64_t src = ((h * 2 + two) * half + i) * cols + c;
          const int64_t dst = ((h * half + i) * 2 + two) * cols + c;
          out[dst] = w[src];
        }
  return out;
}

TEST(Gguf, LlamaQKPermutationIsUndone) {
  TempDir dir;
  const int64_t hidden = 64, heads = 4, kv_heads = 2, head_dim = 16;
  const auto q = testing::normal_values(hidden * hidden, 1);
  const auto k = testing::normal_values(kv_heads * head_dim * hidden, 2);
  const auto q_bias = testing::normal_values(hidden, 3);
  const auto q_stored = llama_cpp_permute(q, hidden, hidden, heads);
  const auto k_stored = llama_cpp_permute(k, kv_heads * head_dim, hidden, kv_heads);
  const auto bias_stored = llama_cpp_permute(q_bias, hidden, 1, heads);
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_uint32("llama.attention.head_count", heads);
  w.set_uint32("llama.attention.head_count_kv", kv_heads);
  w.set_uint32("llama.embedding_length", hidden);
  w.set_uint32("llama.block_count", 1);
  w.add_tensor({"blk.0.attn_q.weight", DType::kF32, {hidden, hidden}, TensorData::values(q_stored)});
  w.add_tensor({"blk.0.attn_k.weight", DType::kF32, {kv_heads * head_dim, hidden},
                TensorData::values(k_stored)});
  w.add_tensor({"blk.0.attn_q.bias", DType::kF32, {hidden}, TensorData::values(bias_stored)});
  w.add_tensor({"blk.0.attn_v.weight", DType::kF32, {kv_heads * head_dim, hidden},
                TensorData::values(k_stored)});
  w.write(dir / "llama.gguf");

  const auto model = Model::open(dir / "llama.gguf");
  EXPECT_EQ(read_all_f32(*model.find("blk.0.attn_q.weight")), q);
  EXPECT_EQ(read_all_f32(*model.find("blk.0.attn_k.weight")), k);
  EXPECT_EQ(read_all_f32(*model.find("blk.0.attn_q.bias")), q_bias);
  EXPECT_EQ(read_all_f32(*model.find("blk.0.attn_v.weight")), k_stored) << "V is not permuted";

  // Rows read in pieces come out the same as the whole.
  const auto& qt = *model.find("blk.0.attn_q.weight");
  std::vector<float> part(5 * hidden);
  read_rows_f32(qt, 17, 5, part.data());
  EXPECT_TRUE(std::equal(part.begin(), part.end(), q.begin() + 17 * hidden));
}

TEST(Gguf, QwenIsNotPermuted) {
  TempDir dir;
  const auto q = testing::normal_values(32 * 32, 1);
  GgufWriter w;
  w.set_string("general.architecture", "qwen2");
  w.set_uint32("qwen2.attention.head_count", 4);
  w.add_tensor({"blk.0.attn_q.weight", DType::kF32, {32, 32}, TensorData::values(q)});
  w.write(dir / "qwen.gguf");
  const auto model = Model::open(dir / "qwen.gguf");
  EXPECT_EQ(read_all_f32(model.tensors[0]), q);
  EXPECT_FALSE(model.tensors[0].row_permutation.active());
}

TEST(Gguf, MalformedFilesAreRefusedWithAClearMessage) {
  struct Case {
    const char* label;
    std::vector<uint8_t> bytes;
    const char* expected;
  };
  auto tensor_file = [](uint32_t type, uint64_t ne0, uint64_t ne1, uint64_t offset,
                        size_t data_bytes, uint32_t n_dims = 2) {
    Bytes f;
    f.header(1, 0).str("w").put<uint32_t>(n_dims).put<uint64_t>(ne0);
    if (n_dims > 1) f.put<uint64_t>(ne1);
    for (uint32_t d = 2; d < n_dims; ++d) f.put<uint64_t>(1);
    f.put<uint32_t>(type).put<uint64_t>(offset).pad_to(32);
    f.b.resize(f.b.size() + data_bytes, 0);
    return f.b;
  };
  std::vector<Case> cases = {
      {"not gguf", {'G', 'G', 'M', 'L', 0, 0, 0, 0}, "not a GGUF file"},
      {"truncated", {'G', 'G', 'U', 'F', 3, 0}, "file ends at byte 6 while reading the version"},
      {"version 1", Bytes().header(0, 0, 1).b, "GGUF version 1"},
      {"version 99", Bytes().header(0, 0, 99).b, "GGUF version 99"},
      {"big-endian", Bytes().header(0, 0, 0x03000000).b, "big-endian"},
      {"billions of tensors", Bytes().header(3000000000ull, 0).b,
       "claims 3000000000 tensors but the file has room for at most 0"},
      {"billions of keys", Bytes().header(0, 5000000000ull).b, "claims 5000000000 metadata entries"},
      {"key length past the end",
       [] {
         auto f = Bytes().header(0, 1).put<uint64_t>(1ull << 40).put<uint32_t>(0);
         f.b.resize(f.b.size() + 64);
         return f.b;
       }(),
       "has length 1099511627776, above the limit"},
      {"unknown value type", Bytes().header(0, 1).str("k").put<uint32_t>(77).put<uint8_t>(0).b,
       "unknown value type 77"},
      {"array of billions",
       Bytes().header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(6).put<uint64_t>(1ull << 40).b,
       "claims 1099511627776 elements"},
      {"string array of billions",
       Bytes().header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(8).put<uint64_t>(1ull << 40).b,
       "claims 1099511627776 elements"},
      {"duplicate key",
       Bytes().header(0, 2).str("k").put<uint32_t>(0).put<uint8_t>(1).str("k").put<uint32_t>(0)
           .put<uint8_t>(2).b,
       "metadata key 'k' appears twice"},
      {"non-UTF-8 key", Bytes().header(0, 1).str("k\xc3").put<uint32_t>(0).put<uint8_t>(1).b,
       "is not valid UTF-8"},
      {"bad alignment",
       Bytes().header(0, 1).str("general.alignment").put<uint32_t>(4).put<uint32_t>(48).b,
       "not a power of two"},
      {"bool not 0 or 1", Bytes().header(0, 1).str("k").put<uint32_t>(7).put<uint8_t>(9).b,
       "bool with byte value 9"},
      {"unknown tensor type", tensor_file(4, 32, 1, 0, 64), "unknown GGML type id 4"},
      {"too many dims", tensor_file(0, 1, 1, 0, 64, 5), "has 5 dimensions"},
      {"dims overflow", tensor_file(0, 1ull << 40, 1ull << 40, 0, 64), "product overflows"},
      {"row not whole blocks", tensor_file(8, 33, 1, 0, 64), "not a whole number of Q8_0 blocks"},
      {"offset misaligned", tensor_file(0, 4, 1, 4, 64), "not a multiple of the alignment 32"},
      {"data past the end", tensor_file(0, 64, 2, 0, 64), "runs past the end of the file"},
      {"duplicate tensor",
       [] {
         Bytes f;
         f.header(2, 0);
         for (int i = 0; i < 2; ++i) {
           f.str("w").put<uint32_t>(1).put<uint64_t>(4).put<uint32_t>(0).put<uint64_t>(0);
         }
         f.pad_to(32).b.resize(f.b.size() + 32);
         return f.b;
       }(),
       "tensor name 'w' appears twice"},
      {"overlapping tensors",
       [] {
         Bytes f;
         f.header(2, 0);
         f.str("a").put<uint32_t>(1).put<uint64_t>(16).put<uint32_t>(0).put<uint64_t>(0);
         f.str("b").put<uint32_t>(1).put<uint64_t>(16).put<uint32_t>(0).put<uint64_t>(32);
         f.pad_to(32).b.resize(f.b.size() + 128);
         return f.b;
       }(),
       "overlap"},
      {"nested arrays too deep",
       [] {
         Bytes f;
         f.header(0, 1).str("k").put<uint32_t>(9);
         for (int d = 0; d < 6; ++d) f.put<uint32_t>(9).put<uint64_t>(1);
         return f.b;
       }(),
       "nests arrays more than 4 deep"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    const std::string message = gguf_error(c.bytes);
    EXPECT_NE(message.find(c.expected), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace referee::io

namespace referee::io {
namespace {

TEST(Gguf, SplitSetsAreReadAsOneModel) {
  testing::TempDir dir;
  const auto a = testing::normal_values(64, 1), b = testing::normal_values(32, 2);
  for (int part = 1; part <= 2; ++part) {
    GgufWriter w;
    if (part == 1) w.set_string("general.architecture", "test");
    w.set_uint16("split.no", static_cast<uint16_t>(part - 1));
    w.set_uint16("split.count", 2);
    if (part == 1) {
      w.add_tensor({"a", DType::kF32, {8, 8}, TensorData::values(a)});
    } else {
      w.add_tensor({"b", DType::kF16, {32}, TensorData::values(b)});
    }
    w.write(dir / fmt::format("m-{:05}-of-00002.gguf", part));
  }
  const auto model = Model::open(dir / "m-00001-of-00002.gguf");
  ASSERT_EQ(model.tensors.size(), 2u);
  EXPECT_EQ(model.files.size(), 2u);
  EXPECT_EQ(read_all_f32(*model.find("a")), a);
  EXPECT_EQ(model.find("b")->file_index, 1u);
  std::filesystem::remove(dir / "m-00002-of-00002.gguf");
  try {
    Model::open(dir / "m-00001-of-00002.gguf");
    FAIL() << "a missing split must be an error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("split 2 of 2 is missing"), std::string::npos) << e.message();
  }
}

}  // namespace
}  // namespace referee::io
