#include "testing/tokenizer_library.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>

#include <map>

#include <nlohmann/json.hpp>

#include "testing/helpers.h"

extern char** environ;

namespace referee::testing {
namespace fs = std::filesystem;

LibraryResult library_encode(const fs::path& dir, const std::vector<std::string>& texts) {
  const fs::path data(REFEREE_TEST_DATA);
  TempDir work;
  write_text(work / "texts.json", nlohmann::json(texts).dump());
  const std::string script = (data / "engine" / "npm_encode.mjs").string();
  const std::string modules = (data / "npm" / "node_modules").string();
  const std::string tokenizer = (dir / "tokenizer.json").string();
  const std::string texts_path = (work / "texts.json").string();
  const std::string out_path = (work / "out.json").string();
  const std::string err_path = (work / "err.txt").string();
  std::vector<std::string> args = {"node", script, "hf", modules, tokenizer, texts_path};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  pid_t pid;
  const int rc = posix_spawnp(&pid, "node", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  LibraryResult result;
  if (rc != 0) {
    ADD_FAILURE() << "cannot run node";
    return result;
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    ADD_FAILURE() << "the tokenizers library refused " << tokenizer << ":\n" << read_text(err_path);
    return result;
  }
  const auto doc = nlohmann::json::parse(read_text(out_path));
  result.ids = doc["ids"].get<std::vector<std::vector<int32_t>>>();
  result.ids_special = doc["ids_special"].get<std::vector<std::vector<int32_t>>>();
  result.vocab_size = doc["vocab_size"].get<int64_t>();
  return result;
}

const engine::BpeTokenizer& npm_bpe_tokenizer(const std::string& name) {
  static std::map<std::string, engine::BpeTokenizer> loaded;
  auto it = loaded.find(name);
  if (it == loaded.end()) {
    it = loaded.emplace(name, engine::BpeTokenizer::load(npm_tokenizer_dir(name))).first;
  }
  return it->second;
}

}  // namespace referee::testing
