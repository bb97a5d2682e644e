#include "tools/bench_workload.h"

#include <charconv>
#include <fstream>

namespace seekserve {

using nlohmann::json;

namespace {

// Used when no tokenizer is given: short common words, one token each in most BPE vocabularies
// when preceded by a space, so lengths are close (the server's usage is what the figures use).
const char* const kFallbackWords[] = {
    "time",       "year",   "people",      "way",     "day",       "man",       "thing",
    "woman",      "life",   "child",       "world",   "school",    "state",     "family",
    "student",    "group",  "country",     "problem", "hand",      "part",      "place",
    "case",       "week",   "company",     "system",  "program",   "question",  "work",
    "government", "number", "night",       "point",   "home",      "water",     "room",
    "mother",     "area",   "money",       "story",   "fact",      "month",     "lot",
    "right",      "study",  "book",        "eye",     "job",       "word",      "business",
    "issue",      "side",   "kind",        "head",    "house",     "service",   "friend",
    "father",     "power",  "hour",        "game",    "line",      "end",       "member",
    "law",        "car",    "city",        "name",    "team",      "minute",    "idea",
    "kid",        "body",   "information", "back",    "parent",    "face",      "others",
    "level",      "office", "door",        "health",  "person",    "art",       "war",
    "history",    "party",  "result",      "change",  "morning",   "reason",    "research",
    "girl",       "guy",    "moment",      "air",     "teacher",   "force",     "education",
    "good",       "new",    "first",       "last",    "long",      "great",     "little",
    "own",        "other",  "old",         "big",     "high",      "different", "small",
    "large",      "next",   "early",       "young",   "important", "few",       "public",
    "bad",        "same",   "able"};

uint64_t mix(uint64_t a, uint64_t b) {
  // splitmix64 of a combination: independent streams per (seed, request).
  uint64_t z = a * 0x9E3779B97F4A7C15ULL + b + 0x632BE59BD9B4E019ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

Result<int64_t> parse_int(std::string_view s, const std::string& flag) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) {
    return invalid_argument("{}: '{}' is not an integer", flag, s);
  }
  return v;
}

}  // namespace

int64_t LengthSpec::sample(std::mt19937_64& rng) const {
  if (max <= min) return min;
  return std::uniform_int_distribution<int64_t>(min, max)(rng);
}

Result<LengthSpec> parse_length_spec(const std::string& text, const std::string& flag) {
  LengthSpec spec;
  const size_t colon = text.find(':');
  if (colon == std::string::npos) {
    SEEK_ASSIGN_OR_RETURN(spec.min, parse_int(text, flag));
    spec.max = spec.min;
  } else {
    SEEK_ASSIGN_OR_RETURN(spec.min, parse_int(std::string_view(text).substr(0, colon), flag));
    SEEK_ASSIGN_OR_RETURN(spec.max, parse_int(std::string_view(text).substr(colon + 1), flag));
  }
  if (spec.min < 1 || spec.max < spec.min) {
    return invalid_argument("{}: '{}' must be N or MIN:MAX with 1 <= MIN <= MAX", flag, text);
  }
  return spec;
}

Result<PriorityMix> parse_priority_mix(const std::string& text) {
  PriorityMix mix;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    const std::string item = text.substr(start, comma - start);
    const size_t colon = item.find(':');
    if (colon == std::string::npos) {
      return invalid_argument("--priority-mix: '{}' is not PRIORITY:WEIGHT", item);
    }
    SEEK_ASSIGN_OR_RETURN(int64_t prio, parse_int(item.substr(0, colon), "--priority-mix"));
    double weight = 0;
    try {
      size_t used = 0;
      weight = std::stod(item.substr(colon + 1), &used);
      if (used != item.size() - colon - 1) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      return invalid_argument("--priority-mix: weight in '{}' is not a number", item);
    }
    if (!(weight > 0)) return invalid_argument("--priority-mix: weight in '{}' must be > 0", item);
    mix.entries.emplace_back(static_cast<int>(prio), weight);
    start = comma + 1;
  }
  if (mix.entries.empty()) return invalid_argument("--priority-mix: empty");
  return mix;
}

Result<std::unique_ptr<Workload>> Workload::create(const WorkloadOptions& options,
                                                   const Tokenizer* tokenizer) {
  std::unique_ptr<Workload> w(new Workload());
  w->options_ = options;
  w->tokenizer_ = tokenizer;
  if (options.prefix_groups > 0 && options.prefix_len >= options.input_len.min) {
    return invalid_argument("--prefix-len {} must be shorter than the shortest --input-len {}",
                            options.prefix_len, options.input_len.min);
  }
  if (tokenizer != nullptr) {
    // Words that are one token after a space, and stay one token in running text: the
    // pre-tokenizer splits at each space, so a run of them encodes word by word.
    for (int32_t id = 0; id < tokenizer->n_vocab() && w->words_.size() < 4096; ++id) {
      const std::string_view b = tokenizer->token_bytes(id);
      if (b.size() < 4 || b.size() > 9 || b[0] != ' ') continue;
      bool letters = true;
      for (char c : b.substr(1)) letters = letters && c >= 'a' && c <= 'z';
      if (!letters) continue;
      const std::vector<int32_t> ids = tokenizer->encode(b, /*add_special=*/false);
      if (ids.size() == 1 && ids[0] == id) w->words_.emplace_back(b);
    }
    if (w->words_.size() < 64) {
      return invalid_argument("the tokenizer has too few plain word tokens ({}) for prompts",
                              w->words_.size());
    }
  } else {
    for (const char* word : kFallbackWords) w->words_.push_back(std::string(" ") + word);
  }
  if (!options.dataset.empty()) {
    std::ifstream in(options.dataset, std::ios::binary);
    if (!in) return not_found("--dataset: cannot open {}", options.dataset);
    std::string line;
    int64_t n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      json doc = json::parse(line, nullptr, false);
      if (doc.is_discarded() || !doc.is_object()) {
        return invalid_argument("{}:{}: not a JSON object", options.dataset, n);
      }
      DatasetEntry e;
      if (doc.contains("messages")) {
        if (!doc["messages"].is_array() || doc["messages"].empty()) {
          return invalid_argument("{}:{}: \"messages\" must be a non-empty array", options.dataset,
                                  n);
        }
        if (!options.chat) {
          return invalid_argument("{}:{}: chat messages need --endpoint chat", options.dataset, n);
        }
        e.messages = doc["messages"];
      } else if (doc.contains("prompt") && doc["prompt"].is_string()) {
        e.prompt = doc["prompt"].get<std::string>();
      } else {
        return invalid_argument("{}:{}: needs \"prompt\" (string) or \"messages\" (array)",
                                options.dataset, n);
      }
      for (const char* key : {"max_tokens", "output_len"}) {
        if (doc.contains(key)) {
          if (!doc[key].is_number_integer() || doc[key].get<int64_t>() < 1) {
            return invalid_argument("{}:{}: \"{}\" must be a positive integer", options.dataset, n,
                                    key);
          }
          e.max_tokens = doc[key].get<int64_t>();
        }
      }
      if (doc.contains("priority")) {
        if (!doc["priority"].is_number_integer()) {
          return invalid_argument("{}:{}: \"priority\" must be an integer", options.dataset, n);
        }
        e.priority = doc["priority"].get<int>();
      }
      w->dataset_.push_back(std::move(e));
    }
    if (w->dataset_.empty())
      return invalid_argument("--dataset: {} has no entries", options.dataset);
  }
  // Token-exactness is a property of the word pool; check it on real prompts before any load.
  if (tokenizer != nullptr && w->dataset_.empty()) {
    for (int64_t i = 0; i < 8; ++i) {
      BenchPrompt p = w->make(i);
      json body = json::parse(p.body);
      const std::string text = options.chat ? body["messages"][0]["content"].get<std::string>()
                                            : body["prompt"].get<std::string>();
      const int64_t got =
          static_cast<int64_t>(tokenizer->encode(text, /*add_special=*/!options.chat).size());
      if (got != p.input_tokens) {
        return internal_error("synthetic prompt {} has {} tokens, expected {}", i, got,
                              p.input_tokens);
      }
    }
  }
  return w;
}

std::string Workload::words_text(uint64_t stream, int64_t n) const {
  std::mt19937_64 rng(stream);
  std::uniform_int_distribution<size_t> pick(0, words_.size() - 1);
  std::string text;
  text.reserve(static_cast<size_t>(n) * 8);
  for (int64_t i = 0; i < n; ++i) text += words_[pick(rng)];
  return text;
}

BenchPrompt Workload::make(int64_t index) const {
  const WorkloadOptions& o = options_;
  std::mt19937_64 rng(mix(o.seed, static_cast<uint64_t>(index)));
  BenchPrompt p;
  json body;
  if (!o.model.empty()) body["model"] = o.model;
  int64_t max_tokens = o.output_len.sample(rng);
  std::optional<int> priority;
  if (!dataset_.empty()) {
    const DatasetEntry& e =
        dataset_[static_cast<size_t>(static_cast<uint64_t>(index) % dataset_.size())];
    if (!e.messages.is_null()) {
      body["messages"] = e.messages;
    } else if (o.chat) {
      body["messages"] = json::array({{{"role", "user"}, {"content", e.prompt}}});
    } else {
      body["prompt"] = e.prompt;
    }
    if (e.max_tokens > 0) max_tokens = e.max_tokens;
    priority = e.priority;
  } else {
    const int64_t n = o.input_len.sample(rng);
    const bool bos =
        !o.chat && tokenizer_ != nullptr && tokenizer_->add_bos() && tokenizer_->bos_id() >= 0;
    const int64_t n_words = std::max<int64_t>(1, n - (bos ? 1 : 0));
    std::string text;
    int64_t n_suffix = n_words;
    if (o.prefix_groups > 0) {
      const int64_t group = static_cast<int64_t>(static_cast<uint64_t>(index) %
                                                 static_cast<uint64_t>(o.prefix_groups));
      text = words_text(mix(o.seed ^ 0x5052454649ULL, static_cast<uint64_t>(group)), o.prefix_len);
      n_suffix = std::max<int64_t>(1, n_words - o.prefix_len);
    }
    text += words_text(rng(), n_suffix);
    if (o.chat) {
      body["messages"] = json::array({{{"role", "user"}, {"content", text}}});
    } else {
      body["prompt"] = text;
    }
    p.input_tokens = (o.prefix_groups > 0 ? o.prefix_len : 0) + n_suffix + (bos ? 1 : 0);
    p.input_exact = tokenizer_ != nullptr;
  }
  if (!priority && !o.priorities.empty()) {
    double total = 0;
    for (const auto& [prio, weight] : o.priorities.entries) total += weight;
    double r = std::uniform_real_distribution<double>(0, total)(rng);
    priority = o.priorities.entries.back().first;
    for (const auto& [prio, weight] : o.priorities.entries) {
      if (r < weight) {
        priority = prio;
        break;
      }
      r -= weight;
    }
  }
  body["max_tokens"] = max_tokens;
  body["stream"] = o.stream;
  if (o.stream) body["stream_options"] = {{"include_usage", true}};
  if (o.ignore_eos) body["ignore_eos"] = true;
  if (o.temperature) body["temperature"] = *o.temperature;
  if (priority) body["priority"] = *priority;
  p.max_tokens = max_tokens;
  p.priority = priority.value_or(0);
  p.body = body.dump();
  return p;
}

}  // namespace seekserve
