#include "eval/request.h"

namespace referee::eval {

const char* request_type_name(RequestType type) {
  switch (type) {
    case RequestType::kLoglikelihood:
      return "loglikelihood";
    case RequestType::kLoglikelihoodRolling:
      return "loglikelihood_rolling";
    case RequestType::kGenerateUntil:
      return "generate_until";
  }
  return "unknown";
}

nlohmann::ordered_json GenerationSettings::to_json() const {
  nlohmann::ordered_json j;
  j["until"] = until;
  j["max_gen_toks"] = max_gen_toks;
  j["temperature"] = temperature;
  j["top_p"] = top_p;
  j["do_sample"] = do_sample;
  j["seed"] = seed ? nlohmann::ordered_json(*seed) : nlohmann::ordered_json(nullptr);
  // Sorted, so the same settings written in another key order hash the same.
  nlohmann::json sorted_extra = extra;
  j["extra"] = sorted_extra;
  return j;
}

}  // namespace referee::eval
