// bench_engine: the engine's training and inference throughput on a model shape, plus the files
// bench/engine_vs_torch.py needs to run the same model in PyTorch and compare (weights, an input
// batch, the engine's logits for it).
//
//   bench_engine --config configs/small.json --vocab 4096 --out DIR [--batch B] [--seq T]
//                [--threads N] [--reps R] [--decode N]
//
// Prints one JSON object: tokens/s of a training step (forward, backward, AdamW), of prefill (a
// whole prompt through the KV-cached path) and of decode (one token at a time), medians over
// `reps` timed repetitions after a warm-up.
#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bench_util.h"
#include "engine/blas_tuning.h"
#include "engine/inference.h"
#include "engine/kernels.h"
#include "engine/optimizer.h"
#include "engine/trainer.h"
#include "engine/transformer.h"
#include "io/safetensors_writer.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/thread_pool.h"

using namespace referee;
namespace fs = std::filesystem;

namespace {

struct Options {
  std::string config = "configs/small.json", out = "bench/data/engine";
  int64_t vocab = 4096, batch = 8, seq = 256, decode = 64;
  unsigned threads = 0;
  int reps = 5;
};

std::vector<int32_t> random_tokens(size_t n, int64_t vocab, uint64_t seed) {
  std::vector<int32_t> t(n);
  for (auto& x : t) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<int32_t>((seed >> 33) % static_cast<uint64_t>(vocab));
  }
  return t;
}

int run(const Options& o) {
  auto config = engine::read_train_config(o.config);
  engine::ModelShape shape = config.model;
  shape.vocab_size = o.vocab;
  shape.max_positions = std::max<int64_t>(shape.max_positions, o.seq + o.decode);
  shape.validate("bench shape");
  ThreadPool pool(o.threads);
  engine::use_single_threaded_blas();
  fs::create_directories(o.out);

  engine::Transformer<float> model(shape, o.batch, o.seq, pool);
  engine::initialise_parameters(model.layout(), 1, model.parameters().data());
  const auto tokens = random_tokens(o.batch * o.seq, o.vocab, 7);
  std::vector<int32_t> targets(tokens.begin() + 1, tokens.end());
  targets.push_back(-1);

  // Weights, input and the engine's logits (row 0, no training) for the PyTorch comparison.
  std::vector<io::TensorToWrite> tensors;
  for (const auto& t : model.layout().tensors) {
    tensors.push_back({t.name, io::DType::kF32, t.shape,
                       io::TensorData::values(std::span(model.parameters().data() + t.offset, t.size))});
  }
  io::write_safetensors(fs::path(o.out) / "model.safetensors", tensors);
  write_file_atomically(fs::path(o.out) / "config.json", engine::config_json(shape));
  model.forward(tokens.data(), targets.data(), false);
  {
    std::ofstream f(fs::path(o.out) / "logits.f32", std::ios::binary);
    f.write(reinterpret_cast<const char*>(model.logits()), o.batch * o.seq * o.vocab * sizeof(float));
  }
  write_file_atomically(fs::path(o.out) / "input.json", nlohmann::json{{"batch", o.batch}, {"seq", o.seq},
                                                                      {"tokens", tokens}, {"decode", o.decode}}.dump());

  // Training step: forward, backward, AdamW.
  engine::OptimizerConfig oc;
  engine::AdamW optimizer(model.layout(), oc);
  const auto train = bench::measure(1, o.reps, [&] {
    model.forward(tokens.data(), targets.data());
    model.backward();
    optimizer.step(model.parameters(), model.gradients(), 1e-4, pool);
  });
  // Inference through the KV-cached path with the same (original) weights.
  std::vector<float> initial(model.layout().total);
  engine::initialise_parameters(model.layout(), 1, initial.data());
  // The session needs a tokenizer object; this benchmark feeds token ids, so any will do.
  engine::BpeTrainingOptions tokenizer_options;
  tokenizer_options.vocab_size = 300;
  const std::vector<std::string> text = {"a tokenizer the benchmark never uses"};
  auto inference_model = std::make_shared<engine::InferenceModel>(
      shape, std::move(initial), engine::train_bpe(text, tokenizer_options), "bench");
  engine::Session session(inference_model, pool);
  const std::vector<int32_t> prompt(tokens.begin(), tokens.begin() + o.seq);
  const auto prefill = bench::measure(1, o.reps, [&] {
    session.reset();
    session.append(prompt, false);
  });
  const auto decode = bench::measure(1, o.reps, [&] {
    session.reset();
    session.append(prompt, false);
    int32_t next = prompt.back();
    for (int64_t i = 0; i < o.decode; ++i) {
      const auto logits = session.append(std::span(&next, 1), false);
      next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
  });
  // Decode time excludes the prefill it starts with.
  std::vector<double> decode_only;
  for (size_t i = 0; i < decode.seconds.size(); ++i) {
    decode_only.push_back(std::max(1e-9, decode.seconds[i] - prefill.median()));
  }
  const bench::Timing decode_timing{decode_only};
  const nlohmann::ordered_json result = {
      {"machine", bench::machine_description()},
      {"blas_kernels", engine::blas_kernel_name()},
      {"threads", pool.size()},
      {"parameters", model.layout().total},
      {"batch", o.batch}, {"seq", o.seq}, {"decode_tokens", o.decode},
      {"train_tokens_per_s", o.batch * o.seq / train.median()},
      {"train_step_s", {train.median(), train.min(), train.max()}},
      {"prefill_tokens_per_s", o.seq / prefill.median()},
      {"decode_tokens_per_s", o.decode / decode_timing.median()}};
  fmt::print("{}\n", result.dump(2));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  engine::configure_blas(argv);
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return std::string(argv[++i]);
    };
    if (a == "--config") o.config = value();
    else if (a == "--out") o.out = value();
    else if (a == "--vocab") o.vocab = std::stoll(value());
    else if (a == "--batch") o.batch = std::stoll(value());
    else if (a == "--seq") o.seq = std::stoll(value());
    else if (a == "--decode") o.decode = std::stoll(value());
    else if (a == "--threads") o.threads = static_cast<unsigned>(std::stoi(value()));
    else if (a == "--reps") o.reps = std::stoi(value());
    else {
      fmt::print(stderr, "usage: bench_engine [--config F] [--vocab V] [--out DIR] [--batch B] "
                         "[--seq T] [--decode N] [--threads N] [--reps R]\n");
      return 2;
    }
  }
  try {
    return run(o);
  } catch (const Error& e) {
    fmt::print(stderr, "bench_engine: error: {}\n", e.message());
    return 2;
  }
}
