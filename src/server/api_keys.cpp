#include "server/api_keys.h"

#include <charconv>
#include <sstream>

namespace seekserve {

namespace {

bool parse_int32(std::string_view s, int32_t& out) {
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, out);
  return ec == std::errc() && p == end;
}

// Equal strings, in time that depends only on the lengths.
bool same(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

Result<PriorityRange> parse_priority_range(std::string_view text, std::string_view what) {
  const size_t colon = text.find(':', text.starts_with('-') ? 1 : 0);
  PriorityRange r;
  if (colon == std::string_view::npos || !parse_int32(text.substr(0, colon), r.min) ||
      !parse_int32(text.substr(colon + 1), r.max))
    return invalid_argument("{}: '{}' is not MIN:MAX (integers, like 0:100)", what, text);
  if (r.min > r.max) return invalid_argument("{}: '{}' has MIN > MAX", what, text);
  return r;
}

Result<std::vector<ApiKey>> parse_api_keys(std::string_view text, const std::string& path,
                                           PriorityRange default_range) {
  std::vector<ApiKey> keys;
  std::istringstream in{std::string(text)};
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    std::istringstream words(line);
    std::string word;
    if (!(words >> word) || word.starts_with('#')) continue;
    ApiKey k;
    k.key = word;
    k.priority = default_range;
    bool have_range = false;
    while (words >> word) {
      if (word == "admin" && !k.admin) {
        k.admin = true;
      } else if (!have_range && word.find(':') != std::string::npos) {
        SEEK_ASSIGN_OR_RETURN(k.priority,
                              parse_priority_range(word, fmt::format("{}:{}", path, n)));
        have_range = true;
      } else {
        return invalid_argument("{}:{}: unexpected '{}' (a line is: KEY [MIN:MAX] [admin])", path,
                                n, word);
      }
    }
    for (const ApiKey& other : keys)
      if (other.key == k.key) return invalid_argument("{}:{}: the key appears twice", path, n);
    keys.push_back(std::move(k));
  }
  if (keys.empty()) return invalid_argument("{}: no keys in the file", path);
  return keys;
}

const ApiKey* ApiKeys::find(std::string_view header) const {
  constexpr std::string_view kBearer = "Bearer ";
  if (!header.starts_with(kBearer)) return nullptr;
  header.remove_prefix(kBearer.size());
  const ApiKey* found = nullptr;
  for (const ApiKey& k : keys_)
    if (same(k.key, header)) found = &k;
  return found;
}

}  // namespace seekserve
