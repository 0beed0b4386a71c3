#include "eval/cache.h"

#include <sqlite3.h>

#include <fmt/format.h>

#include <cmath>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "util/error.h"
#include "util/hash.h"

namespace referee::eval {
namespace {

using Json = nlohmann::json;
using nlohmann::ordered_json;

// "RfEc" in the database header's application_id: marks the file as a referee request cache.
constexpr int32_t kApplicationId = 0x52664563;

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

ordered_json number(double v) {
  if (std::isfinite(v)) return v;
  return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");  // JSON has no infinities
}

double read_number(const Json& j, const std::string& where) {
  if (j.is_number()) return j.get<double>();
  if (j.is_string()) {
    const auto s = j.get<std::string>();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
    if (s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
  }
  throw corrupt(where, "a response's logprob is not a number");
}

struct Pending {
  std::string key, request, response;
  double created;
};

}  // namespace

ordered_json response_to_json(const Response& r) {
  ordered_json j;
  j["logprob"] = number(r.logprob);
  j["greedy"] = r.greedy;
  j["text"] = r.text;
  j["raw_text"] = r.raw_text;
  j["finish_reason"] = r.finish_reason;
  return j;
}

Response response_from_json(const Json& j, const std::string& where) {
  if (!j.is_object()) throw corrupt(where, "a stored response is not a JSON object");
  Response r;
  try {
    r.logprob = read_number(j.at("logprob"), where);
    r.greedy = j.at("greedy").get<bool>();
    r.text = j.at("text").get<std::string>();
    r.raw_text = j.at("raw_text").get<std::string>();
    r.finish_reason = j.at("finish_reason").get<std::string>();
  } catch (const Json::exception& e) {
    throw corrupt(where, "a stored response is malformed ({})", e.what());
  }
  return r;
}

ordered_json RequestCache::canonical_request(const Request& r, const std::string& model_identity) {
  ordered_json j;
  j["key_version"] = 1;
  j["type"] = request_type_name(r.type);
  j["model"] = model_identity;
  j["context"] = r.context;
  j["continuation"] = r.continuation;
  // Only generation reads the settings; loglikelihood keys do not change when defaults do.
  j["generation"] = r.type == RequestType::kGenerateUntil ? r.generation.to_json() : ordered_json(nullptr);
  j["repeat"] = r.repeat;
  return j;
}

std::string RequestCache::key(const Request& r, const std::string& model_identity) {
  const std::string text = canonical_request(r, model_identity).dump(-1, ' ', false, Json::error_handler_t::replace);
  // JSON cannot carry bytes that are not UTF-8 (they become U+FFFD above), so the raw context and
  // continuation are hashed too, length-prefixed: texts differing only in such bytes never share
  // a key.
  Hasher h;
  h.update(text);
  h.update(fmt::format("\n{}:", r.context.size()));
  h.update(r.context);
  h.update(fmt::format("\n{}:", r.continuation.size()));
  h.update(r.continuation);
  return h.digest().hex();
}

struct RequestCache::Impl {
  std::filesystem::path path;
  CacheOptions options;
  sqlite3* db = nullptr;
  std::mutex db_mutex;  // one connection, used by one thread at a time

  std::mutex pending_mutex;
  std::condition_variable wake;
  std::vector<Pending> pending;
  std::unordered_map<std::string, size_t> pending_index;  // key → position in `pending`
  bool stopping = false;
  std::thread flusher;

  std::string where() const { return path.string(); }

  [[noreturn]] void fail(const std::string& what, int rc) {
    const std::string detail = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    if (rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT) {
      throw corrupt(where(), "not a usable SQLite request cache ({}: {})", what, detail);
    }
    throw Error::io(where(), fmt::format("{}: {}", what, detail));
  }

  void exec(const char* sql) {
    char* message = nullptr;
    const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &message);
    if (rc != SQLITE_OK) {
      std::string m = message ? message : sqlite3_errstr(rc);
      sqlite3_free(message);
      if (rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT) {
        throw corrupt(where(), "not a usable SQLite request cache ({})", m);
      }
      throw Error::io(where(), fmt::format("{}: {}", sql, m));
    }
  }

  int64_t pragma(const char* name) {
    sqlite3_stmt* st = nullptr;
    const std::string sql = fmt::format("PRAGMA {}", name);
    int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr);
    if (rc != SQLITE_OK) fail(sql, rc);
    rc = sqlite3_step(st);
    const int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) fail(sql, rc);
    return v;
  }

  void open() {
    const int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      const std::string m = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
      sqlite3_close(db);
      db = nullptr;
      throw Error::io(where(), fmt::format("cannot open the request cache: {}", m));
    }
    sqlite3_busy_timeout(db, static_cast<int>(options.busy_timeout.count()));
    sqlite3_extended_result_codes(db, 0);
    // The first read of the header tells a foreign or damaged file.
    const int64_t app = pragma("application_id");
    const int64_t version = pragma("user_version");
    const int64_t tables = [&] {
      sqlite3_stmt* st = nullptr;
      if (sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master", -1, &st, nullptr) != SQLITE_OK) fail("reading the schema", SQLITE_ERROR);
      const int r = sqlite3_step(st);
      const int64_t n = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
      sqlite3_finalize(st);
      return n;
    }();
    if (app == 0 && version == 0 && tables == 0) {  // new (or empty) file: make it a cache
      exec("PRAGMA journal_mode=WAL");
      exec("BEGIN IMMEDIATE");
      // Another process may have created it meanwhile.
      if (pragma("application_id") == 0) {
        exec(fmt::format("PRAGMA application_id={}", kApplicationId).c_str());
        exec(fmt::format("PRAGMA user_version={}", kSchemaVersion).c_str());
        exec("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY NOT NULL, request TEXT NOT NULL, "
             "response TEXT NOT NULL, created REAL NOT NULL) WITHOUT ROWID");
      }
      exec("COMMIT");
      return;
    }
    if (app != kApplicationId) {
      throw corrupt(where(), "is a SQLite database but not a referee request cache (application_id {:#x})", app);
    }
    if (version > kSchemaVersion) {
      throw not_supported(where(), "the request cache's schema version is {}; this referee reads up to {}", version, kSchemaVersion);
    }
    if (version < 1) throw corrupt(where(), "the request cache has no schema version");
    exec("PRAGMA journal_mode=WAL");
  }

  void commit(std::vector<Pending> rows) {
    if (rows.empty()) return;
    std::lock_guard lock(db_mutex);
    exec("BEGIN IMMEDIATE");
    sqlite3_stmt* st = nullptr;
    int rc = sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO responses (key, request, response, created) VALUES (?, ?, ?, ?)",
                                -1, &st, nullptr);
    if (rc != SQLITE_OK) {
      exec("ROLLBACK");
      fail("preparing an insert", rc);
    }
    for (const auto& p : rows) {
      sqlite3_bind_text(st, 1, p.key.data(), static_cast<int>(p.key.size()), SQLITE_STATIC);
      sqlite3_bind_text(st, 2, p.request.data(), static_cast<int>(p.request.size()), SQLITE_STATIC);
      sqlite3_bind_text(st, 3, p.response.data(), static_cast<int>(p.response.size()), SQLITE_STATIC);
      sqlite3_bind_double(st, 4, p.created);
      rc = sqlite3_step(st);
      sqlite3_reset(st);
      if (rc != SQLITE_DONE) {
        sqlite3_finalize(st);
        exec("ROLLBACK");
        fail("storing an answer", rc);
      }
    }
    sqlite3_finalize(st);
    exec("COMMIT");
  }

  // Takes the buffer and commits it; on failure the rows go back to the buffer.
  void flush_pending() {
    std::vector<Pending> rows;
    {
      std::lock_guard lock(pending_mutex);
      rows.swap(pending);
      pending_index.clear();
    }
    try {
      commit(rows);
    } catch (...) {
      std::lock_guard lock(pending_mutex);
      for (auto& p : rows) {
        if (pending_index.count(p.key)) continue;
        pending_index[p.key] = pending.size();
        pending.push_back(std::move(p));
      }
      throw;
    }
  }

  void flusher_loop() {
    std::unique_lock lock(pending_mutex);
    while (!stopping) {
      wake.wait_for(lock, options.flush_interval);
      if (pending.empty()) continue;
      lock.unlock();
      try {
        flush_pending();
      } catch (const std::exception&) {
        // Kept buffered; the next flush (or the destructor, or flush()) retries and reports.
      }
      lock.lock();
    }
  }
};

RequestCache::RequestCache(const std::filesystem::path& path, const CacheOptions& options)
    : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  impl_->options = options;
  try {
    impl_->open();
  } catch (...) {
    sqlite3_close(impl_->db);
    throw;
  }
  impl_->flusher = std::thread([impl = impl_.get()] { impl->flusher_loop(); });
}

RequestCache::~RequestCache() {
  {
    std::lock_guard lock(impl_->pending_mutex);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  impl_->flusher.join();
  try {
    impl_->flush_pending();
  } catch (const std::exception&) {
    // A destructor cannot report; flush() before destruction to see failures.
  }
  sqlite3_close(impl_->db);
}

const std::filesystem::path& RequestCache::path() const { return impl_->path; }

void RequestCache::put(const std::string& key, const ordered_json& canonical, const Response& response) {
  Pending p{key, canonical.dump(-1, ' ', false, Json::error_handler_t::replace),
            response_to_json(response).dump(-1, ' ', false, Json::error_handler_t::replace), now_seconds()};
  bool full = false;
  {
    std::lock_guard lock(impl_->pending_mutex);
    if (impl_->pending_index.count(key)) return;  // first answer wins here too
    impl_->pending_index[key] = impl_->pending.size();
    impl_->pending.push_back(std::move(p));
    full = impl_->pending.size() >= impl_->options.flush_rows;
  }
  if (full) impl_->flush_pending();
}

void RequestCache::flush() { impl_->flush_pending(); }

std::vector<std::optional<Response>> RequestCache::lookup(const std::vector<std::string>& keys) {
  std::vector<std::optional<Response>> out(keys.size());
  std::vector<size_t> missing;
  {
    std::lock_guard lock(impl_->pending_mutex);
    for (size_t i = 0; i < keys.size(); ++i) {
      const auto it = impl_->pending_index.find(keys[i]);
      if (it != impl_->pending_index.end()) {
        out[i] = response_from_json(Json::parse(impl_->pending[it->second].response), impl_->where());
      } else {
        missing.push_back(i);
      }
    }
  }
  if (missing.empty()) return out;
  std::lock_guard lock(impl_->db_mutex);
  sqlite3* db = impl_->db;
  sqlite3_stmt* st = nullptr;
  int rc = sqlite3_prepare_v2(db, "SELECT response FROM responses WHERE key = ?", -1, &st, nullptr);
  if (rc != SQLITE_OK) impl_->fail("preparing a lookup", rc);
  impl_->exec("BEGIN");  // one read transaction for the batch
  try {
    for (const size_t i : missing) {
      sqlite3_bind_text(st, 1, keys[i].data(), static_cast<int>(keys[i].size()), SQLITE_STATIC);
      rc = sqlite3_step(st);
      if (rc == SQLITE_ROW) {
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
        const int n = sqlite3_column_bytes(st, 0);
        Json j;
        try {
          j = Json::parse(std::string_view(text ? text : "", static_cast<size_t>(n)));
        } catch (const Json::exception&) {
          throw corrupt(impl_->where(), "the stored answer for key {} is not JSON", keys[i]);
        }
        out[i] = response_from_json(j, impl_->where());
      } else if (rc != SQLITE_DONE) {
        impl_->fail("looking up an answer", rc);
      }
      sqlite3_reset(st);
    }
  } catch (...) {
    sqlite3_finalize(st);
    sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
    throw;
  }
  sqlite3_finalize(st);
  impl_->exec("COMMIT");
  return out;
}

std::optional<Response> RequestCache::lookup(const std::string& key) { return lookup(std::vector{key})[0]; }

size_t RequestCache::size() {
  std::lock_guard lock(impl_->db_mutex);
  return static_cast<size_t>([&] {
    sqlite3_stmt* st = nullptr;
    int rc = sqlite3_prepare_v2(impl_->db, "SELECT count(*) FROM responses", -1, &st, nullptr);
    if (rc != SQLITE_OK) impl_->fail("counting entries", rc);
    rc = sqlite3_step(st);
    const int64_t n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return n;
  }());
}

}  // namespace referee::eval
