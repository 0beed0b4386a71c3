// The request cache: one SQLite file mapping a request's key to the model's answer, so a run
// killed at any moment resumes without re-sending what was answered, and reruns cost nothing.
//   key      XXH3-128 (hex) of the request's canonical JSON: request type, context,
//            continuation, generation settings (generate_until only), model identity, repeat
//            (and the raw context and continuation bytes, which JSON cannot always carry)
//   request  that canonical JSON (a cache can be audited: what was asked, of which model)
//   response the Response as JSON; created: seconds since the epoch
// Writes are buffered and committed in transactions at least every flush_interval (a background
// thread) or every flush_rows rows; `INSERT OR IGNORE` keeps the first answer, so two runs sharing
// a cache never disagree. WAL journal and a busy timeout let threads and processes share one file.
// A file that is not SQLite, or SQLite but not a request cache, is refused with one referee::Error
// naming it; the schema's version is the database's user_version.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "eval/request.h"

namespace referee::eval {

struct CacheOptions {
  std::chrono::milliseconds flush_interval{100};
  size_t flush_rows = 256;
  std::chrono::milliseconds busy_timeout{30000};
};

class RequestCache {
 public:
  static constexpr int kSchemaVersion = 1;

  // Opens or creates the cache file (its directory must exist).
  explicit RequestCache(const std::filesystem::path& path, const CacheOptions& options = {});
  ~RequestCache();  // commits what is buffered
  RequestCache(const RequestCache&) = delete;
  RequestCache& operator=(const RequestCache&) = delete;

  static nlohmann::ordered_json canonical_request(const Request& request, const std::string& model_identity);
  static std::string key(const Request& request, const std::string& model_identity);

  // Answers for `keys` (buffered writes included), in order; nullopt where none is stored.
  std::vector<std::optional<Response>> lookup(const std::vector<std::string>& keys);
  std::optional<Response> lookup(const std::string& key);

  // Buffers an answer; it is committed within flush_interval. Thread-safe.
  void put(const std::string& key, const nlohmann::ordered_json& canonical_request, const Response& response);
  void flush();  // commits everything buffered now

  size_t size();  // entries committed
  const std::filesystem::path& path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

nlohmann::ordered_json response_to_json(const Response& response);
Response response_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace referee::eval
