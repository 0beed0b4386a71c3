#include "zoo/lineage.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "engine/checkpoint.h"
#include "util/error.h"

namespace referee::zoo {
namespace {

// Edges along which all of a model's weights descend from its parent. A graft ("borrowed_layers")
// copies only part of the donor, and distillation copies behaviour, not weights. Training a
// grafted initialisation ("trained_around_borrowed_layers") is a weight edge: every weight of the
// trained model starts from the graft's.
bool weight_edge(const Edge& e) {
  return e.kind != "distillation" && e.kind != "borrowed_layers";
}

}  // namespace

void Lineage::add(ModelRecord record) {
  for (auto& m : models_) {
    if (m.name == record.name) {
      m = std::move(record);
      return;
    }
  }
  models_.push_back(std::move(record));
}

const ModelRecord& Lineage::record(const std::string& name) const {
  for (const auto& m : models_) {
    if (m.name == name) return m;
  }
  throw Error::invalid_argument(name, "no such model in the zoo lineage");
}

Lineage::Relation Lineage::relation(const std::string& first, const std::string& second) const {
  // Ancestors through weight-derivation edges, with the path of edge kinds from each ancestor.
  auto ancestors = [&](const std::string& start) {
    std::map<std::string, std::vector<std::string>> found;  // ancestor -> kinds, ancestor first
    std::vector<std::pair<std::string, std::vector<std::string>>> frontier = {{start, {}}};
    while (!frontier.empty()) {
      auto [name, path] = frontier.back();
      frontier.pop_back();
      for (const Edge& e : record(name).edges) {
        if (!weight_edge(e) || found.contains(e.parent)) continue;
        std::vector<std::string> longer = {e.kind};
        longer.insert(longer.end(), path.begin(), path.end());
        found[e.parent] = longer;
        frontier.push_back({e.parent, longer});
      }
    }
    return found;
  };
  const auto of_first = ancestors(first), of_second = ancestors(second);
  Relation r;
  if (auto it = of_second.find(first); it != of_second.end()) {
    return {"derived", "second_from_first", it->second, "", {"all"}, ""};
  }
  if (auto it = of_first.find(second); it != of_first.end()) {
    return {"derived", "first_from_second", it->second, "", {"all"}, ""};
  }
  for (const auto& [ancestor, path] : of_first) {
    if (of_second.contains(ancestor)) {
      return {"common_ancestor", "none", {}, ancestor, {"all"}, ""};
    }
  }
  // Borrowed tensors: an edge of either model (or of its ancestors) that copies part of the
  // other model (or of one of its ancestors).
  auto lineage_of = [&](const std::string& name, const std::map<std::string, std::vector<std::string>>& anc) {
    std::set<std::string> all = {name};
    for (const auto& [a, p] : anc) all.insert(a);
    return all;
  };
  const auto first_line = lineage_of(first, of_first), second_line = lineage_of(second, of_second);
  auto borrowing = [&](const std::set<std::string>& borrower, const std::set<std::string>& donor)
      -> std::vector<std::string> {
    for (const auto& b : borrower) {
      for (const Edge& e : record(b).edges) {
        if (e.kind == "borrowed_layers" && donor.contains(e.parent)) return e.borrowed;
        if (e.kind == "trained_around_borrowed_layers") {
          // The grafted initialisation's own borrowing is what counts.
          for (const Edge& inner : record(e.parent).edges) {
            if (inner.kind == "borrowed_layers" && donor.contains(inner.parent)) return inner.borrowed;
          }
        }
      }
    }
    return {};
  };
  if (auto shared = borrowing(second_line, first_line); !shared.empty()) {
    return {"partially_borrowed", "second_from_first", {}, "", shared, ""};
  }
  if (auto shared = borrowing(first_line, second_line); !shared.empty()) {
    return {"partially_borrowed", "first_from_second", {}, "", shared, ""};
  }
  r.relation = "independent";
  r.direction = "none";
  for (const Edge& e : record(second).edges) {
    if (e.kind == "distillation" && first_line.contains(e.parent)) r.behaviour = "second_distilled_from_first";
  }
  for (const Edge& e : record(first).edges) {
    if (e.kind == "distillation" && second_line.contains(e.parent)) r.behaviour = "first_distilled_from_second";
  }
  return r;
}

nlohmann::ordered_json Lineage::manifest(const std::filesystem::path& zoo_dir,
                                         const std::string& profile) const {
  using nlohmann::ordered_json;
  ordered_json models = ordered_json::array();
  for (const auto& m : models_) {
    ordered_json edges = ordered_json::array();
    for (const auto& e : m.edges) {
      edges.push_back({{"parent", e.parent}, {"kind", e.kind}, {"borrowed", e.borrowed}});
    }
    ordered_json checkpoints = ordered_json::array();
    const auto dir = zoo_dir / m.path;
    if (std::filesystem::is_directory(dir / "checkpoints")) {
      for (const auto& c : engine::list_checkpoints(dir / "checkpoints")) {
        checkpoints.push_back({{"step", c.state.step},
                               {"path", std::filesystem::relative(c.dir, zoo_dir).string()}});
      }
    }
    const bool has_log = std::filesystem::exists(dir / "train_log.jsonl");
    models.push_back({{"name", m.name},
                      {"path", m.path},
                      {"format", m.format},
                      {"scenario", m.scenario},
                      {"tokenizer", m.tokenizer},
                      {"parents", edges},
                      {"checkpoints", checkpoints},
                      {"train_log", has_log ? ordered_json(m.path + "/train_log.jsonl") : ordered_json(nullptr)}});
  }
  ordered_json pairs = ordered_json::array();
  for (const auto& a : models_) {
    for (const auto& b : models_) {
      if (a.name == b.name) continue;
      const auto r = relation(a.name, b.name);
      ordered_json entry = {{"first", a.name}, {"second", b.name}, {"relation", r.relation},
                            {"direction", r.direction}, {"path", r.path}, {"shared", r.shared}};
      if (!r.common_ancestor.empty()) entry["common_ancestor"] = r.common_ancestor;
      if (!r.behaviour.empty()) entry["behaviour"] = r.behaviour;
      entry["same_tokenizer"] = a.tokenizer == b.tokenizer;
      pairs.push_back(entry);
    }
  }
  return {{"schema", "referee.zoo/1"}, {"profile", profile}, {"models", models}, {"pairs", pairs}};
}

}  // namespace referee::zoo
