// make_fuzz_seeds DIR — writes a seed corpus for each fuzz target (DIR/fuzz_<target>/): small valid
// files made by the project's writers, so the fuzzers start from inputs that reach deep into the
// parsers instead of from nothing.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "io/gguf_writer.h"
#include "io/safetensors_writer.h"
#include "trace/fingerprint.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace referee;

namespace {

void write(const fs::path& path, std::string_view text) {
  std::ofstream(path, std::ios::binary) << text;
}

void safetensors_seeds(const fs::path& dir) {
  const std::vector<float> values = {1, -2, 3.5f, 0, 0.25f, -7, 8, 9};
  int n = 0;
  for (auto dtype : {io::DType::kF32, io::DType::kBF16, io::DType::kF16, io::DType::kF8_E4M3,
                     io::DType::kI8, io::DType::kBool}) {
    io::write_safetensors(dir / fmt::format("seed{}.safetensors", n++),
                          {{"model.layers.0.self_attn.q_proj.weight", dtype, {2, 4},
                            io::TensorData::values(values)},
                           {"model.norm.weight", dtype, {8}, io::TensorData::values(values)}},
                          {{"format", "pt"}});
  }
}

void gguf_seeds(const fs::path& dir) {
  std::vector<float> values(2 * 256);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i % 17) - 8.0f;
  int n = 0;
  for (auto dtype : {io::DType::kF32, io::DType::kF16, io::DType::kQ8_0, io::DType::kQ4_0,
                     io::DType::kQ4_K, io::DType::kQ6_K}) {
    io::GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.set_uint32("llama.attention.head_count", 2);
    w.set_uint32("llama.block_count", 1);
    w.set_string_array("tokenizer.ggml.tokens", {"a", "b", "ab"});
    w.set_string_array("tokenizer.ggml.merges", {"a b"});
    const std::vector<int32_t> types = {1, 1, 3};
    w.set_int32_array("tokenizer.ggml.token_type", types);
    w.set_uint32("general.base_model.count", 1);
    w.set_string("general.base_model.0.name", "base");
    w.add_tensor({"blk.0.attn_q.weight", dtype, {2, 256}, io::TensorData::values(values)});
    w.write(dir / fmt::format("seed{}.gguf", n++));
  }
}

// A small fingerprint with every part present: tokenizer, probes, digests with sketches,
// responses of each kind for a dense layer and an expert, norms.
void fingerprint_seeds(const fs::path& dir) {
  trace::Fingerprint fp;
  fp.name = "seed";
  fp.source = "seed";
  fp.format = "huggingface";
  fp.arch.layers = 1, fp.arch.hidden = 4, fp.arch.ffn = 3, fp.arch.vocab = 8;
  io::Tokenizer t;
  t.model_type = "BPE";
  t.byte_level = true;
  for (int i = 0; i < 8; ++i) {
    t.vocab.push_back({std::string(1, static_cast<char>('a' + i)), i});
    fp.probe_tokens.push_back(std::string(1, static_cast<char>('a' + i)));
  }
  t.merges = {{"a", "b"}};
  t.added_tokens.push_back({7, "h", true});
  fp.tokenizer = t;
  trace::TensorDigest d;
  d.name = "model.layers.0.mlp.gate_proj.weight";
  d.dtype = "F32";
  d.shape = {3, 4};
  d.norm = 2.0;
  d.sketch = {0.5f, -1.0f, 0.25f, 2.0f};
  fp.tensors.push_back(d);
  int k = 0;
  for (auto kind : {trace::ResponseKind::kQuery, trace::ResponseKind::kKey, trace::ResponseKind::kGate,
                    trace::ResponseKind::kUp}) {
    for (int32_t expert : {-1, 0}) {
      trace::Responses r;
      r.kind = kind, r.layer = 0, r.expert = expert, r.units = 3, r.total_units = 3;
      for (int i = 0; i < 3 * 8; ++i) r.values.push_back(static_cast<float>((i * 7 + k) % 11) - 5.0f);
      ++k;
      fp.responses.push_back(r);
    }
  }
  fp.norms.push_back({0, io::Role::kAttnNorm, {1.0f, 0.9f, 1.1f, 1.0f}});
  trace::save_fingerprint(fp, dir / "seed.safetensors");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fmt::print(stderr, "usage: make_fuzz_seeds DIR\n");
    return 2;
  }
  try {
    const fs::path root = argv[1];
    for (const char* target : {"fuzz_safetensors", "fuzz_gguf", "fuzz_tokenizer_json",
                               "fuzz_config_json", "fuzz_jinja", "fuzz_bpe_tokenizer", "fuzz_fingerprint",
                               "fuzz_eval_task", "fuzz_eval_dataset", "fuzz_openai_response"}) {
      fs::create_directories(root / target);
    }
    safetensors_seeds(root / "fuzz_safetensors");
    gguf_seeds(root / "fuzz_gguf");
    fingerprint_seeds(root / "fuzz_fingerprint");
    write(root / "fuzz_tokenizer_json" / "bpe.json",
          R"({"added_tokens":[{"id":3,"content":"<s>","special":true}],
              "normalizer":{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"_"}]},
              "pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split",
                "pattern":{"Regex":"\\s+"},"behavior":"Isolated"},{"type":"ByteLevel"}]},
              "model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2,"<s>":3},"merges":["a b"]}})");
    write(root / "fuzz_bpe_tokenizer" / "byte_level.json",
          R"({"added_tokens":[{"id":4,"content":"<s>","special":true,"lstrip":true}],
              "pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Digits"},
                {"type":"Split","pattern":{"Regex":"\\s+|\\p{L}+"},"behavior":"MergedWithNext",
                 "invert":false},{"type":"ByteLevel","add_prefix_space":true}]},
              "post_processor":{"type":"ByteLevel"},"decoder":{"type":"ByteLevel"},
              "model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2,"Ġ":3},"merges":["a b"]}})");
    write(root / "fuzz_bpe_tokenizer" / "text.txt", "한국어 <mask> word\xff\xfe\t\u3000<x>");
    write(root / "fuzz_tokenizer_json" / "unigram.json",
          R"({"model":{"type":"Unigram","unk_id":0,"vocab":[["<unk>",0],["a",-1.5]]}})");
    write(root / "fuzz_tokenizer_json" / "config.json",
          R"({"bos_token":{"content":"<s>"},"eos_token":"</s>",
              "chat_template":[{"name":"default","template":"{{x}}"}]})");
    write(root / "fuzz_config_json" / "config.json",
          R"({"architectures":["LlamaForCausalLM"],"hidden_size":64,"num_hidden_layers":2,
              "num_attention_heads":4,"text_config":{"vocab_size":100},"rope_theta":1e4,
              "model_max_length":1000000000000000019884624838656})");
    write(root / "fuzz_config_json" / "index.json",
          R"({"metadata":{"total_size":16},"weight_map":{"a":"model-00001-of-00002.safetensors"}})");
    write(root / "fuzz_config_json" / "README.md", "---\nbase_model:\n- a/b\nbase_model_relation: finetune\n---\n");
    // A chat template (first byte 0x03: trim_blocks and lstrip_blocks, as transformers renders)
    // and lm-eval task fields.
    write(root / "fuzz_jinja" / "chat.jinja",
          "\x03{%- set ns = namespace(sys='') %}{% for m in messages %}\n"
          "  {% if m.role == 'system' %}{% set ns.sys = m.content|trim %}{% continue %}{% endif %}\n"
          "<|{{ m.role }}|>{{ (m.content or '')|replace('<', '&lt;') }}{% for c in m.tool_calls|default([]) %}"
          "{{ c.arguments|tojson(indent=2) }}{% endfor %}{{ eos_token if loop.last }}\n"
          "{% endfor %}{% if add_generation_prompt %}<|assistant|>{{ ns.sys[:4] }}{% endif %}");
    write(root / "fuzz_jinja" / "doc_to_text.jinja",
          "{{question.strip()}}\n{% for c in choices %}{{ 'ABCD'[loop.index0] }}. {{ c }}\n{% endfor %}"
          "Answer: {{ ['A','B','C','D'][answer-1] }} {{ label|int + n // 2 ** 3 }} {{ f|round(1) }}");
    write(root / "fuzz_jinja" / "doc_to_choice.jinja", "{{ [question ~ '!', e or 'x', 1.5e-7, none] }}");
    // eval: task files in lm-evaluation-harness's format, dataset files (the first byte picks the
    // parser: 0 CSV, 1 TSV, 2 JSON Lines, 3 JSON), endpoint answers (the first byte picks the
    // request type and API).
    write(root / "fuzz_eval_task" / "multiple_choice.yaml",
          "task: mc\ntag: [korean]\ndataset_path: json\ntest_split: test\noutput_type: multiple_choice\n"
          "num_fewshot: 1\ndescription: \"Pick one.\\n\\n\"\n"
          "doc_to_text: \"{{question.strip()}}\\nAnswer:\"\ndoc_to_choice: \"{{choices}}\"\n"
          "doc_to_target: answer\nmetric_list:\n  - metric: acc\n  - metric: acc_norm\nmetadata:\n  version: 1.0\n");
    write(root / "fuzz_eval_task" / "generate_until.yaml",
          "task: gen\ndataset_path: json\ntest_split: test\noutput_type: generate_until\n"
          "doc_to_text: \"Q: {{question}}\\nA:\"\ndoc_to_target: \"{{['a','b'][answer]}}\"\nrepeats: 3\n"
          "generation_kwargs:\n  until: [\"\\n\"]\n  do_sample: false\n  temperature: 0\n"
          "filter_list:\n  - name: get-answer\n    filter:\n      - function: regex\n"
          "        regex_pattern: \"#### (\\\\-?[0-9]+)\"\n      - function: majority_vote\n      - function: take_first\n"
          "metric_list:\n  - metric: exact_match\n    ignore_case: true\n    regexes_to_ignore: [\",\"]\n");
    write(root / "fuzz_eval_dataset" / "kmmlu.csv",
          std::string(1, '\0') + "question,answer,A,B,C,D,Category\n\"회계란, \"\"무엇\"\"인가?\",1,가,나,다,라,Accounting\r\n");
    write(root / "fuzz_eval_dataset" / "kobest.tsv", std::string(1, '\1') + "paragraph\tquestion\tlabel\n문단\t질문\t0\n");
    write(root / "fuzz_eval_dataset" / "docs.jsonl",
          std::string(1, '\2') + "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 1}\n\n{\"question\": 2}\n");
    write(root / "fuzz_eval_dataset" / "click.json",
          std::string(1, '\3') + "[{\"id\": \"x\", \"paragraph\": \"\", \"choices\": [\"가\", \"나\"], \"answer\": \"나\"}]");
    write(root / "fuzz_openai_response" / "echo_logprobs.json",
          std::string(1, '\0') + R"({"choices": [{"text": "Question: two plus two? four", "logprobs": {"tokens": ["Question", ":", " four"],
              "token_logprobs": [null, -1.5, -0.25], "top_logprobs": [null, {":": -1.5}, {" four": -0.25}],
              "text_offset": [0, 8, 23]}, "finish_reason": "length"}]})");
    write(root / "fuzz_openai_response" / "chat.json",
          std::string(1, '\x0e') + R"({"choices": [{"message": {"role": "assistant", "content": "<think>hm</think>four",
              "reasoning_content": "x"}, "finish_reason": "stop"}]})");
  } catch (const Error& e) {
    fmt::print(stderr, "make_fuzz_seeds: error: {}\n", e.message());
    return 2;
  }
  return 0;
}
