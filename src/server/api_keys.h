#pragma once
// API keys and what each may do. `--api-key KEY` is one key with the default priority range
// that may also use /admin; `--api-key-file FILE` adds keys, one a line:
//   KEY [MIN:MAX] [admin]
// MIN:MAX widens (or narrows) the `priority` range that key's requests are clamped to (default:
// --priority-range); `admin` lets it call /admin/*. Blank lines and lines starting with '#' are
// ignored. With no key configured at all, the server is open (and /admin with it).
//
// Thread-safety: immutable after construction.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace seekserve {

struct PriorityRange {
  int32_t min = 0, max = 100;
};

// "MIN:MAX" with MIN <= MAX; kInvalidArgument naming `what` otherwise.
Result<PriorityRange> parse_priority_range(std::string_view text, std::string_view what);

struct ApiKey {
  std::string key;
  PriorityRange priority;
  bool admin = false;
};

// The lines of a key file (see above); `path` names errors ("FILE:LINE: ...").
Result<std::vector<ApiKey>> parse_api_keys(std::string_view text, const std::string& path,
                                           PriorityRange default_range);

class ApiKeys {
 public:
  ApiKeys() = default;
  explicit ApiKeys(std::vector<ApiKey> keys) : keys_(std::move(keys)) {}
  bool open() const { return keys_.empty(); }
  // The key an "Authorization: Bearer KEY" header names, or nullptr (constant-time compare).
  const ApiKey* find(std::string_view authorization_header) const;

 private:
  std::vector<ApiKey> keys_;
};

}  // namespace seekserve
