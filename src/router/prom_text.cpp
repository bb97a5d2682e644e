#include "router/prom_text.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

namespace seekserve {

namespace {

bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
bool is_name_char(char c) {
  return is_name_start(c) || (c >= '0' && c <= '9');
}
bool is_space(char c) {
  return c == ' ' || c == '\t';
}

// A cursor over one line.
struct LineReader {
  std::string_view line;
  size_t pos = 0;

  bool at_end() const { return pos >= line.size(); }
  char peek() const { return at_end() ? '\0' : line[pos]; }
  void skip_spaces() {
    while (!at_end() && is_space(line[pos])) ++pos;
  }
  // A metric or label name; label names may not contain ':'.
  std::string_view name(bool allow_colon) {
    size_t start = pos;
    if (at_end() || !is_name_start(line[pos]) || (!allow_colon && line[pos] == ':')) return {};
    ++pos;
    while (!at_end() && is_name_char(line[pos]) && (allow_colon || line[pos] != ':')) ++pos;
    return line.substr(start, pos - start);
  }
  std::string_view token() {
    size_t start = pos;
    while (!at_end() && !is_space(line[pos])) ++pos;
    return line.substr(start, pos - start);
  }
};

std::optional<double> parse_float(std::string_view s) {
  if (s == "+Inf" || s == "Inf" || s == "+inf" || s == "inf")
    return std::numeric_limits<double>::infinity();
  if (s == "-Inf" || s == "-inf") return -std::numeric_limits<double>::infinity();
  if (s == "NaN" || s == "nan") return std::numeric_limits<double>::quiet_NaN();
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty()) return std::nullopt;
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  // from_chars takes "inf"/"nan" spellings handled above; refuse the rest (e.g. "infinity").
  if (!std::isfinite(v) && s.find_first_of("iInN") != std::string_view::npos) return std::nullopt;
  return v;
}

Status parse_labels(LineReader& r, PromSample& sample) {
  // r is just past '{'.
  while (true) {
    r.skip_spaces();
    if (r.peek() == '}') {
      ++r.pos;
      return Status::ok_status();
    }
    std::string_view label = r.name(false);
    if (label.empty()) return invalid_argument("expected a label name at column {}", r.pos + 1);
    r.skip_spaces();
    if (r.peek() != '=') return invalid_argument("expected '=' after label '{}'", label);
    ++r.pos;
    r.skip_spaces();
    if (r.peek() != '"') return invalid_argument("expected '\"' to open label '{}'", label);
    ++r.pos;
    std::string value;
    bool closed = false;
    while (!r.at_end()) {
      char c = r.line[r.pos++];
      if (c == '"') {
        closed = true;
        break;
      }
      if (c == '\\') {
        if (r.at_end()) break;
        char e = r.line[r.pos++];
        if (e == 'n')
          value += '\n';
        else if (e == '\\' || e == '"')
          value += e;
        else
          return invalid_argument("bad escape '\\{}' in label '{}'", e, label);
      } else {
        value += c;
      }
    }
    if (!closed) return invalid_argument("unterminated value of label '{}'", label);
    for (const auto& [existing, v] : sample.labels)
      if (existing == label) return invalid_argument("duplicate label '{}'", label);
    sample.labels.emplace_back(std::string(label), std::move(value));
    r.skip_spaces();
    if (r.peek() == ',') {
      ++r.pos;
    } else if (r.peek() != '}') {
      return invalid_argument("expected ',' or '}}' after label '{}'", label);
    }
  }
}

Status parse_sample(std::string_view line, PromSample& sample) {
  LineReader r{line};
  r.skip_spaces();
  std::string_view name = r.name(true);
  if (name.empty()) return invalid_argument("expected a metric name");
  sample.name = std::string(name);
  size_t after_name = r.pos;
  r.skip_spaces();
  if (r.peek() == '{') {
    ++r.pos;
    SEEK_RETURN_IF_ERROR(parse_labels(r, sample));
  } else {
    r.pos = after_name;
  }
  if (!r.at_end() && !is_space(r.peek()))
    return invalid_argument("unexpected '{}' after '{}'", r.peek(), sample.name);
  r.skip_spaces();
  std::string_view value = r.token();
  if (value.empty()) return invalid_argument("missing value for '{}'", sample.name);
  std::optional<double> v = parse_float(value);
  if (!v) return invalid_argument("bad value '{}' for '{}'", value, sample.name);
  sample.value = *v;
  r.skip_spaces();
  if (!r.at_end()) {
    std::string_view ts = r.token();
    int64_t t = 0;
    auto [end, ec] = std::from_chars(ts.data(), ts.data() + ts.size(), t);
    if (ec != std::errc() || end != ts.data() + ts.size())
      return invalid_argument("bad timestamp '{}' for '{}'", ts, sample.name);
    sample.timestamp_ms = t;
    r.skip_spaces();
    if (!r.at_end()) return invalid_argument("trailing text after '{}'", sample.name);
  }
  return Status::ok_status();
}

const char* const kTypes[] = {"counter", "gauge", "histogram", "summary", "untyped"};

}  // namespace

std::optional<std::string_view> PromSample::label(std::string_view label_name) const {
  for (const auto& [n, v] : labels)
    if (n == label_name) return std::string_view(v);
  return std::nullopt;
}

std::optional<double> PromExposition::first(std::string_view name) const {
  for (const PromSample& s : samples)
    if (s.name == name) return s.value;
  return std::nullopt;
}

double PromExposition::sum(std::string_view name) const {
  double total = 0;
  for (const PromSample& s : samples)
    if (s.name == name) total += s.value;
  return total;
}

bool PromExposition::has(std::string_view name) const {
  return first(name).has_value();
}

Result<PromExposition> parse_prom_text(std::string_view text) {
  PromExposition out;
  size_t line_no = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t first = 0;
    while (first < line.size() && is_space(line[first])) ++first;
    if (first == line.size()) continue;
    if (line[first] == '#') {
      LineReader r{line, first + 1};
      r.skip_spaces();
      std::string_view keyword = r.token();
      if (keyword != "TYPE" && keyword != "HELP") continue;  // a plain comment
      r.skip_spaces();
      std::string_view family = r.name(true);
      if (family.empty())
        return invalid_argument("line {}: expected a metric name after # {}", line_no, keyword);
      if (keyword == "TYPE") {
        r.skip_spaces();
        std::string_view type = r.token();
        if (std::find(std::begin(kTypes), std::end(kTypes), type) == std::end(kTypes))
          return invalid_argument("line {}: unknown metric type '{}'", line_no, type);
        auto [it, inserted] = out.types.emplace(std::string(family), std::string(type));
        if (!inserted) return invalid_argument("line {}: second TYPE for '{}'", line_no, family);
      }
      continue;
    }
    PromSample sample;
    Status s = parse_sample(line, sample);
    if (!s.ok()) return s.with_context(fmt::format("line {}", line_no));
    out.samples.push_back(std::move(sample));
  }
  return out;
}

std::vector<HistogramBucket> histogram_buckets(const PromExposition& exposition,
                                               std::string_view family) {
  std::string bucket_name = std::string(family) + "_bucket";
  std::map<double, double> by_bound;
  for (const PromSample& s : exposition.samples) {
    if (s.name != bucket_name) continue;
    std::optional<std::string_view> le = s.label("le");
    if (!le) continue;
    std::optional<double> bound = parse_float(*le);
    if (!bound || std::isnan(*bound)) continue;
    by_bound[*bound] += s.value;
  }
  std::vector<HistogramBucket> out;
  out.reserve(by_bound.size());
  for (const auto& [bound, count] : by_bound) out.push_back({bound, count});
  return out;
}

std::optional<double> histogram_quantile(double q, const std::vector<HistogramBucket>& buckets) {
  if (buckets.size() < 2 || !std::isinf(buckets.back().upper_bound)) return std::nullopt;
  double observations = buckets.back().cumulative_count;
  if (!(observations > 0)) return std::nullopt;
  if (q < 0) return -std::numeric_limits<double>::infinity();
  if (q > 1) return std::numeric_limits<double>::infinity();
  double rank = q * observations;
  size_t b = 0;
  while (b < buckets.size() && buckets[b].cumulative_count < rank) ++b;
  if (b >= buckets.size()) b = buckets.size() - 1;  // counts not monotonic: be safe
  if (b == buckets.size() - 1) return buckets[buckets.size() - 2].upper_bound;
  if (b == 0 && buckets[0].upper_bound <= 0) return buckets[0].upper_bound;
  double bucket_start = b == 0 ? 0.0 : buckets[b - 1].upper_bound;
  double below = b == 0 ? 0.0 : buckets[b - 1].cumulative_count;
  double in_bucket = buckets[b].cumulative_count - below;
  if (!(in_bucket > 0)) return buckets[b].upper_bound;
  return bucket_start + (buckets[b].upper_bound - bucket_start) * ((rank - below) / in_bucket);
}

std::string prom_escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

}  // namespace seekserve
