// Task: rendering documents into requests and scoring responses as lm-evaluation-harness does
// (its ConfigurableTask.doc_to_text / doc_to_target / doc_to_choice, fewshot_context, the
// ContextSampler and process_results). Loading is in task.cc.
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "eval/python_random.h"
#include "eval/task.h"
#include "util/error.h"
#include "util/jinja.h"

namespace referee::eval {

using ojson = nlohmann::ordered_json;
using jinja::Value;
using Variables = std::map<std::string, Value>;

namespace {

// --- Python literals (ast.literal_eval of what a template rendered) ---------------------------

class LiteralParser {
 public:
  explicit LiteralParser(std::string_view s) : s_(s) {}
  std::optional<Value> parse() {
    std::optional<Value> v = value(0);
    skip();
    if (!v || pos_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  void skip() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' ||
                                s_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool word(std::string_view w) {
    if (s_.substr(pos_, w.size()) != w) return false;
    size_t end = pos_ + w.size();
    if (end < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[end])) || s_[end] == '_')) {
      return false;
    }
    pos_ = end;
    return true;
  }
  static void append_utf8(std::string& out, uint32_t c) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (c < 0x800) {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out += static_cast<char>(0xE0 | (c >> 12));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (c >> 18));
      out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  std::optional<Value> string_literal() {
    char quote = s_[pos_++];
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != quote) {
      char c = s_[pos_++];
      if (c == '\n') return std::nullopt;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) return std::nullopt;
      char e = s_[pos_++];
      int hex_digits = 0;
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case '0': out += '\0'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case '\n': break;
        case 'x': hex_digits = 2; break;
        case 'u': hex_digits = 4; break;
        case 'U': hex_digits = 8; break;
        default:
          out += '\\';
          out += e;
      }
      if (hex_digits > 0) {
        if (pos_ + hex_digits > s_.size()) return std::nullopt;
        uint32_t c32 = 0;
        for (int i = 0; i < hex_digits; ++i) {
          char h = s_[pos_++];
          if (!std::isxdigit(static_cast<unsigned char>(h))) return std::nullopt;
          c32 = c32 * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h))
                                                     ? h - '0'
                                                     : (std::tolower(h) - 'a' + 10));
        }
        if (c32 > 0x10FFFF) return std::nullopt;
        append_utf8(out, c32);
      }
    }
    if (pos_ >= s_.size()) return std::nullopt;
    ++pos_;
    return Value(out);
  }
  std::optional<Value> number() {
    size_t start = pos_;
    if (s_[pos_] == '-' || s_[pos_] == '+') ++pos_;
    bool is_float = false;
    while (pos_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[pos_])) ||
                                s_[pos_] == '.' || s_[pos_] == 'e' || s_[pos_] == 'E' ||
                                ((s_[pos_] == '-' || s_[pos_] == '+') &&
                                 (s_[pos_ - 1] == 'e' || s_[pos_ - 1] == 'E')))) {
      if (!std::isdigit(static_cast<unsigned char>(s_[pos_]))) is_float = true;
      ++pos_;
    }
    std::string text(s_.substr(start, pos_ - start));
    if (text.empty() || text == "-" || text == "+") return std::nullopt;
    char* end = nullptr;
    if (!is_float) {
      errno = 0;
      long long v = std::strtoll(text.c_str(), &end, 10);
      if (errno != 0 || end != text.c_str() + text.size()) return std::nullopt;
      return Value(static_cast<int64_t>(v));
    }
    double d = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size()) return std::nullopt;
    return Value(d);
  }
  std::optional<Value> value(int depth) {
    if (depth > 32) return std::nullopt;
    skip();
    if (pos_ >= s_.size()) return std::nullopt;
    char c = s_[pos_];
    if (c == '\'' || c == '"') return string_literal();
    if (c == '[' || c == '(') {
      char close = c == '[' ? ']' : ')';
      ++pos_;
      std::vector<Value> items;
      skip();
      bool trailing_comma = false;
      while (pos_ < s_.size() && s_[pos_] != close) {
        auto v = value(depth + 1);
        if (!v) return std::nullopt;
        items.push_back(std::move(*v));
        if (items.size() > 100000) return std::nullopt;
        skip();
        trailing_comma = false;
        if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
          trailing_comma = true;
          skip();
        } else {
          break;
        }
      }
      if (pos_ >= s_.size() || s_[pos_] != close) return std::nullopt;
      ++pos_;
      if (c == '(' && items.size() == 1 && !trailing_comma) return items[0];
      return c == '[' ? Value::list(std::move(items)) : Value::tuple(std::move(items));
    }
    if (word("True")) return Value(true);
    if (word("False")) return Value(false);
    if (word("None")) return Value();
    if (c == '-' || c == '+' || c == '.' || std::isdigit(static_cast<unsigned char>(c))) {
      return number();
    }
    return std::nullopt;
  }
  std::string_view s_;
  size_t pos_ = 0;
};

bool is_ascii_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

ojson value_to_json(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kBool:
      return v.as_bool();
    case Value::Kind::kInt:
      return v.as_int();
    case Value::Kind::kDouble:
      return v.as_double();
    case Value::Kind::kString:
      return v.as_string();
    case Value::Kind::kList: {
      ojson a = ojson::array();
      for (const auto& item : v.as_list()) a.push_back(value_to_json(item));
      return a;
    }
    case Value::Kind::kMap:
    case Value::Kind::kNamespace: {
      ojson o = ojson::object();
      for (const auto& [k, item] : v.as_map()) o[k] = value_to_json(item);
      return o;
    }
    default:
      return nullptr;
  }
}

// Python's str() of a value: a string as it is, anything else as Jinja (Python) prints it.
std::string py_str(const Value& v) { return v.is_string() ? v.as_string() : v.str(); }

std::string py_float(double d) { return Value(d).str(); }

}  // namespace

struct Task::Impl {
  std::optional<jinja::Template> description, text, target, choice;
};

namespace {

std::optional<jinja::Template> compile_field(const TaskConfig& c, const TemplateField& f,
                                             const char* name) {
  if (f.kind != TemplateField::Kind::kString) return std::nullopt;
  return jinja::Template::parse(f.text, fmt::format("{}: {}", c.source.string(), name),
                                jinja::Options::lm_eval());
}

// The rendering of one task for one document: its variables and the lm-eval accessors.
class DocView {
 public:
  DocView(const TaskConfig& c, const Task::Impl& impl, const Document& doc, int64_t doc_id)
      : c_(c), impl_(impl), doc_(doc), doc_id_(doc_id) {
    if (!doc.is_object()) throw error("the document is not a JSON object");
    Value v = jinja::from_json(doc, where());
    for (const auto& [k, item] : v.as_map()) vars_.emplace(k, item);
  }

  Error error(const std::string& what) const { return Error::invalid_argument(where(), what); }

  // Renders with the document's variables; a template error also names the task and document.
  std::string render(const jinja::Template& t) const {
    try {
      return t.render(vars_);
    } catch (const Error& e) {
      throw Error(e.kind(), fmt::format("{}: {}", where(), e.message()));
    }
  }
  std::optional<Value> evaluate(const jinja::Template& t) const {
    try {
      return t.evaluate_single_expression(vars_);
    } catch (const Error& e) {
      throw Error(e.kind(), fmt::format("{}: {}", where(), e.message()));
    }
  }
  std::string where() const { return fmt::format("task '{}', document {}", c_.name, doc_id_); }

  // lm-eval's doc_to_text: a column's value, or the template's text (digits become an int when the
  // task has choices).
  Value text() const { return text_or_target(c_.doc_to_text, impl_.text, false); }
  Value target() const { return text_or_target(c_.doc_to_target, impl_.target, true); }

  std::vector<std::string> choices() const {
    if (choices_) return *choices_;
    Value list;
    const TemplateField& f = c_.doc_to_choice;
    if (f.kind == TemplateField::Kind::kList) {
      list = jinja::from_json(f.list, where());
    } else if (f.kind == TemplateField::Kind::kString) {
      if (doc_.contains(f.text)) {
        list = jinja::from_json(doc_[f.text], where());
      } else {
        std::optional<Value> v = evaluate(*impl_.choice);
        if (v && v->is_list()) {
          list = *v;
        } else {
          std::string rendered = v ? py_str(*v) : render(*impl_.choice);
          std::optional<Value> parsed = LiteralParser(rendered).parse();
          if (!parsed || !parsed->is_list()) {
            throw error(fmt::format("doc_to_choice rendered '{}', which is not a list",
                                    rendered.substr(0, 200)));
          }
          list = *parsed;
        }
      }
    } else {
      throw error("the task has no doc_to_choice");
    }
    if (!list.is_list()) throw error("doc_to_choice is not a list");
    std::vector<std::string> out;
    for (const auto& item : list.as_list()) out.push_back(py_str(item));
    choices_ = out;
    return out;
  }

  std::string description() const {
    if (!impl_.description) return c_.description.kind == TemplateField::Kind::kInt
                                       ? std::to_string(c_.description.number)
                                       : std::string();
    return render(*impl_.description);
  }

  // The prompt text of this document, as fewshot_context ends it.
  std::string prompt() const {
    Value t = text();
    if (!t.is_string()) {
      throw Error::not_supported(where(), fmt::format("doc_to_text gives {} rather than text "
                                 "(lm-eval's multiple-input mode is not supported)", t.repr()));
    }
    return t.as_string();
  }

  // One labelled few-shot example, as lm-eval's ContextSampler writes it.
  std::string example() const {
    std::string out;
    Value content = text();
    bool has_choices = c_.doc_to_choice.present();
    if (!has_choices || content.is_string()) {
      out += py_str(content);
    } else {
      out += choice_at(content);
    }
    Value t = target();
    if (!(t.is_string() && t.as_string().empty())) {
      out += c_.target_delimiter;
      if (t.is_list()) {
        out += t.as_list().empty() ? std::string() : py_str(t.as_list()[0]);
      } else if (!has_choices || t.is_string()) {
        out += py_str(t);
      } else {
        out += choice_at(t);
      }
      out += c_.fewshot_delimiter;
    }
    return out;
  }

  std::string choice_at(const Value& index) const {
    auto ch = choices();
    if (!index.is_int() || index.as_int() < 0 ||
        index.as_int() >= static_cast<int64_t>(ch.size())) {
      throw error(fmt::format("{} is not an index into the {} choices", index.repr(), ch.size()));
    }
    return ch[static_cast<size_t>(index.as_int())];
  }

  const Variables& vars() const { return vars_; }

 private:
  Value text_or_target(const TemplateField& f, const std::optional<jinja::Template>& tmpl,
                       bool is_target) const {
    switch (f.kind) {
      case TemplateField::Kind::kAbsent:
        return Value(std::string());
      case TemplateField::Kind::kInt:
        return Value(f.number);
      case TemplateField::Kind::kList:
        return jinja::from_json(f.list, where());
      case TemplateField::Kind::kString:
        break;
    }
    if (doc_.contains(f.text)) return jinja::from_json(doc_[f.text], where());
    std::string s = render(*tmpl);
    if (is_ascii_digits(s) && c_.doc_to_choice.present() && s.size() <= 18) {
      return Value(static_cast<int64_t>(std::stoll(s)));
    }
    if (is_target && s.size() >= 2 && s.front() == '[' && s.back() == ']') {
      if (auto parsed = LiteralParser(s).parse()) return *parsed;
    }
    return Value(s);
  }

  const TaskConfig& c_;
  const Task::Impl& impl_;
  const Document& doc_;
  int64_t doc_id_;
  Variables vars_;
  mutable std::optional<std::vector<std::string>> choices_;
};

ojson generation_kwargs_json(const GenerationSettings& g) {
  ojson j;
  j["until"] = g.until;
  j["max_gen_toks"] = g.max_gen_toks;
  j["do_sample"] = g.do_sample;
  j["temperature"] = g.temperature;
  j["top_p"] = g.top_p;
  if (g.seed) j["seed"] = *g.seed;
  for (const auto& [k, v] : g.extra.items()) j[k] = v;
  return j;
}

}  // namespace

Task::Task(TaskConfig config) : config_(std::move(config)), impl_(std::make_unique<Impl>()) {
  impl_->description = compile_field(config_, config_.description, "description");
  impl_->text = compile_field(config_, config_.doc_to_text, "doc_to_text");
  impl_->target = compile_field(config_, config_.doc_to_target, "doc_to_target");
  impl_->choice = compile_field(config_, config_.doc_to_choice, "doc_to_choice");
  for (const auto& p : config_.filters) CompiledPipeline::compile(p, config_.source.string());
}

Task::~Task() = default;
Task::Task(Task&&) noexcept = default;
Task& Task::operator=(Task&&) noexcept = default;

std::string Task::eval_split() const {
  if (config_.test_split) return *config_.test_split;
  if (config_.validation_split) return *config_.validation_split;
  throw Error::invalid_argument(config_.source.string(),
                                fmt::format("task '{}' has no test_split or validation_split",
                                            config_.name));
}

std::optional<std::string> Task::fewshot_split() const {
  if (config_.fewshot_split) return config_.fewshot_split;
  if (config_.training_split) return config_.training_split;
  if (config_.validation_split) return config_.validation_split;
  return config_.test_split;
}

std::string Task::render_context(const Document& doc) const {
  DocView view(config_, *impl_, doc, 0);
  return view.description() + view.prompt();
}

std::vector<Request> Task::build_requests(const std::vector<Document>& eval_docs,
                                          const std::vector<Document>& fewshot_pool,
                                          int64_t num_fewshot, uint64_t fewshot_seed) const {
  const TaskConfig& c = config_;
  if (num_fewshot < 0 || num_fewshot > 10000) {
    throw invalid_argument(c.name, "num_fewshot is {}; it must be between 0 and 10000", num_fewshot);
  }
  const bool rolling = c.output_type == "loglikelihood_rolling";
  if (rolling && num_fewshot > 0) {
    throw invalid_argument(c.name, "loglikelihood_rolling tasks take no few-shot examples");
  }
  // lm-eval draws one extra example when the few-shot split is the evaluated one (as written).
  const bool same_split = c.fewshot_split == c.test_split;
  const size_t draw = static_cast<size_t>(num_fewshot) + (same_split ? 1 : 0);
  if (num_fewshot > 0 && draw > fewshot_pool.size()) {
    throw invalid_argument(c.name, "{}-shot needs {} few-shot documents but the pool has {}",
                           num_fewshot, draw, fewshot_pool.size());
  }
  PythonRandom rng(fewshot_seed);
  std::vector<Request> out;
  for (size_t d = 0; d < eval_docs.size(); ++d) {
    const auto doc_id = static_cast<int64_t>(d);
    DocView view(c, *impl_, eval_docs[d], doc_id);
    Request base;
    base.task = c.name;
    base.doc_id = doc_id;
    if (rolling) {
      base.type = RequestType::kLoglikelihoodRolling;
      base.context = py_str(view.target());
      out.push_back(std::move(base));
      continue;
    }
    std::string context = view.description();
    if (num_fewshot > 0) {
      std::vector<size_t> picked;
      if (c.fewshot_sampler == "first_n") {
        for (size_t i = 0; i < draw; ++i) picked.push_back(i);
      } else {
        picked = rng.sample(fewshot_pool.size(), draw);
      }
      const nlohmann::json self = eval_docs[d];
      int64_t kept = 0;
      for (size_t i : picked) {
        if (kept == num_fewshot) break;
        if (nlohmann::json(fewshot_pool[i]) == self) continue;
        DocView example(c, *impl_, fewshot_pool[i], static_cast<int64_t>(i));
        context += example.example();
        ++kept;
      }
    }
    context += view.prompt();
    base.context = std::move(context);
    if (c.output_type == "multiple_choice") {
      auto choices = view.choices();
      for (size_t i = 0; i < choices.size(); ++i) {
        Request r = base;
        r.type = RequestType::kLoglikelihood;
        r.continuation = c.target_delimiter + choices[i];
        r.index = static_cast<int32_t>(i);
        out.push_back(std::move(r));
      }
    } else if (c.output_type == "generate_until") {
      for (int64_t rep = 0; rep < c.repeats; ++rep) {
        Request r = base;
        r.type = RequestType::kGenerateUntil;
        r.generation = c.generation;
        r.repeat = static_cast<int32_t>(rep);
        out.push_back(std::move(r));
      }
    } else {  // loglikelihood
      base.type = RequestType::kLoglikelihood;
      base.continuation = c.target_delimiter + py_str(view.target());
      out.push_back(std::move(base));
    }
  }
  return out;
}

Task::Scores Task::score(const std::vector<Document>& eval_docs,
                         const std::vector<Request>& requests,
                         const std::vector<Response>& responses) const {
  const TaskConfig& c = config_;
  if (requests.size() != responses.size()) {
    throw invalid_argument(c.name, "{} requests but {} responses", requests.size(),
                           responses.size());
  }
  const bool generative = c.output_type == "generate_until";
  std::vector<CompiledPipeline> pipelines;
  if (generative) {
    for (const auto& p : c.filters) pipelines.push_back(CompiledPipeline::compile(p, c.source.string()));
  }
  std::vector<std::optional<ExactMatch>> exact;
  for (const auto& m : c.metrics) {
    if (m.metric == "exact_match") {
      exact.emplace_back(ExactMatch(m.exact_match, c.source.string()));
    } else {
      exact.emplace_back();
    }
  }
  std::vector<std::string> filter_names;
  if (generative) {
    for (const auto& p : c.filters) filter_names.push_back(p.name);
  } else {
    filter_names.push_back("none");
  }
  // values[filter][metric] = per-document values; weights for the weighted aggregations.
  std::vector<std::vector<std::vector<double>>> values(
      filter_names.size(), std::vector<std::vector<double>>(c.metrics.size()));
  std::vector<std::vector<double>> weights(c.metrics.size());

  Scores scores;
  size_t next = 0;
  for (size_t d = 0; d < eval_docs.size(); ++d) {
    const auto doc_id = static_cast<int64_t>(d);
    DocView view(c, *impl_, eval_docs[d], doc_id);
    size_t begin = next;
    while (next < requests.size() && requests[next].doc_id == doc_id) ++next;
    size_t count = next - begin;
    if (count == 0) {
      throw invalid_argument(c.name, "no requests for document {} (requests must come in "
                             "document order)", d);
    }
    Value target = view.target();
    ojson target_json = value_to_json(target);
    ojson arguments = ojson::object();
    ojson resps = ojson::array();
    auto sample_base = [&]() {
      ojson s;
      s["doc_id"] = doc_id;
      s["doc"] = eval_docs[d];
      s["target"] = target_json;
      s["arguments"] = arguments;
      s["resps"] = resps;
      return s;
    };
    std::vector<std::string> metric_names;
    for (const auto& m : c.metrics) metric_names.push_back(m.metric);

    if (generative) {
      if (count != static_cast<size_t>(c.repeats)) {
        throw invalid_argument(c.name, "document {} has {} requests; repeats is {}", d, count,
                               c.repeats);
      }
      arguments["gen_args_0"] = ojson{{"arg_0", requests[begin].context},
                                      {"arg_1", generation_kwargs_json(requests[begin].generation)}};
      std::vector<std::string> texts;
      for (size_t i = begin; i < next; ++i) texts.push_back(responses[i].text);
      resps.push_back(texts);
      // The reference(s): a choice when the task has choices, each of a list, else str(target).
      std::vector<std::string> golds;
      if (c.doc_to_choice.present() && !target.is_string()) {
        golds.push_back(view.choice_at(target));
      } else if (target.is_list()) {
        for (const auto& g : target.as_list()) golds.push_back(py_str(g));
      } else {
        golds.push_back(py_str(target));
      }
      for (size_t f = 0; f < pipelines.size(); ++f) {
        FilterValue fv = pipelines[f].apply(texts);
        std::string prediction = fv.scored();
        ojson s = sample_base();
        s["filtered_resps"] = ojson::array({fv.to_json()});
        s["filter"] = filter_names[f];
        s["metrics"] = metric_names;
        for (size_t m = 0; m < c.metrics.size(); ++m) {
          double v = 0;
          for (const auto& g : golds) v = std::max(v, (*exact[m])(prediction, g));
          values[f][m].push_back(v);
          s[c.metrics[m].metric] = v;
        }
        scores.samples.push_back(std::move(s));
      }
      continue;
    }

    ojson filtered = ojson::array();
    for (size_t i = begin; i < next; ++i) {
      ojson args;
      args["arg_0"] = requests[i].context;
      if (c.output_type != "loglikelihood_rolling") args["arg_1"] = requests[i].continuation;
      arguments[fmt::format("gen_args_{}", i - begin)] = args;
      if (c.output_type == "loglikelihood_rolling") {
        resps.push_back(ojson::array({py_float(responses[i].logprob)}));
        filtered.push_back(py_float(responses[i].logprob));
      } else {
        ojson pair = ojson::array({py_float(responses[i].logprob), responses[i].greedy ? "True" : "False"});
        resps.push_back(ojson::array({pair}));
        filtered.push_back(pair);
      }
    }
    ojson s = sample_base();
    s["filtered_resps"] = filtered;
    s["filter"] = "none";
    s["metrics"] = metric_names;

    if (c.output_type == "multiple_choice") {
      auto choices = view.choices();
      if (count != choices.size()) {
        throw invalid_argument(c.name, "document {} has {} requests but {} choices", d, count,
                               choices.size());
      }
      // Gold: an index, a choice's text, or a list of indices (several right answers).
      std::vector<int64_t> gold;
      auto index_of = [&](const Value& g) -> int64_t {
        if (g.is_int()) {
          return g.as_int() < static_cast<int64_t>(choices.size()) ? g.as_int() : -100;
        }
        if (g.is_string()) {
          for (size_t i = 0; i < choices.size(); ++i) {
            if (choices[i] == g.as_string()) return static_cast<int64_t>(i);
          }
        }
        return -100;
      };
      if (target.is_list()) {
        for (const auto& g : target.as_list()) gold.push_back(index_of(g));
      } else {
        gold.push_back(index_of(target));
      }
      // np.argmax: the first maximum; a NaN wins at once.
      auto argmax = [](const std::vector<double>& xs) {
        size_t best = 0;
        for (size_t i = 0; i < xs.size(); ++i) {
          if (std::isnan(xs[i])) return static_cast<int64_t>(i);
          if (xs[i] > xs[best]) best = i;
        }
        return static_cast<int64_t>(best);
      };
      std::vector<double> lls, normed;
      for (size_t i = 0; i < count; ++i) {
        double ll = responses[begin + i].logprob;
        lls.push_back(ll);
        normed.push_back(ll / static_cast<double>(code_point_length(choices[i])));
      }
      int64_t pred = argmax(lls), pred_norm = argmax(normed);
      auto contains = [&gold](int64_t p) {
        return std::find(gold.begin(), gold.end(), p) != gold.end();
      };
      for (size_t m = 0; m < c.metrics.size(); ++m) {
        double v = 0;
        const std::string& name = c.metrics[m].metric;
        if (name == "acc") {
          v = contains(pred) ? 1.0 : 0.0;
        } else if (name == "acc_norm") {
          v = contains(pred_norm) ? 1.0 : 0.0;
        } else if (name == "exact_match") {
          for (int64_t g : gold) {
            if (g >= 0 && g < static_cast<int64_t>(count) && responses[begin + g].greedy) v = 1.0;
          }
        }
        values[0][m].push_back(v);
        s[name] = v;
      }
    } else if (c.output_type == "loglikelihood") {
      if (count != 1) throw invalid_argument(c.name, "document {} has {} requests, not 1", d, count);
      for (size_t m = 0; m < c.metrics.size(); ++m) {
        const std::string& name = c.metrics[m].metric;
        double v = name == "acc" ? (responses[begin].greedy ? 1.0 : 0.0) : responses[begin].logprob;
        values[0][m].push_back(v);
        s[name] = name == "acc" ? ojson(static_cast<int>(v)) : ojson(v);
      }
    } else {  // loglikelihood_rolling
      if (count != 1) throw invalid_argument(c.name, "document {} has {} requests, not 1", d, count);
      std::string text = py_str(target);
      double ll = responses[begin].logprob;
      for (size_t m = 0; m < c.metrics.size(); ++m) {
        const std::string& name = c.metrics[m].metric;
        double w = name == "word_perplexity" ? static_cast<double>(count_words(text))
                                             : static_cast<double>(text.size());
        values[0][m].push_back(ll);
        weights[m].push_back(w);
        s[name] = ojson::array({ll, name == "word_perplexity" ? ojson(count_words(text))
                                                               : ojson(text.size())});
      }
    }
    scores.samples.push_back(std::move(s));
  }
  if (next != requests.size()) {
    throw invalid_argument(c.name, "{} requests do not belong to any of the {} documents (or are "
                           "out of order)", requests.size() - next, eval_docs.size());
  }

  scores.n = eval_docs.size();
  scores.metrics["alias"] = c.alias ? *c.alias : c.name;
  for (size_t f = 0; f < filter_names.size(); ++f) {
    for (size_t m = 0; m < c.metrics.size(); ++m) {
      const MetricConfig& mc = c.metrics[m];
      const auto& xs = values[f][m];
      std::string key = fmt::format("{},{}", mc.metric, filter_names[f]);
      std::string stderr_key = fmt::format("{}_stderr,{}", mc.metric, filter_names[f]);
      double value;
      ojson stderr_value = "N/A";
      if (mc.aggregation == "mean") {
        Aggregate a = aggregate_mean(xs);
        value = a.value;
        if (a.stderr_value) stderr_value = *a.stderr_value;
      } else if (mc.aggregation == "perplexity") {
        value = perplexity(xs);
      } else if (mc.aggregation == "weighted_perplexity") {
        value = weighted_perplexity(xs, weights[m]);
      } else {
        value = bits_per_byte(xs, weights[m]);
      }
      scores.metrics[key] = value;
      scores.metrics[stderr_key] = stderr_value;
      scores.primary[key] = value;
    }
  }
  return scores;
}

}  // namespace referee::eval
