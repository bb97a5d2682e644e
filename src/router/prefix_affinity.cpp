// prefix_affinity: consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018).
// The request's leading text is hashed onto a ring holding `virtual_nodes` points per backend;
// the backend owning the first point at or after the hash gets the request, so requests sharing
// a prefix meet the same replica's prefix cache, and a backend joining or leaving moves only its
// share of the keys. Load bound: a backend may hold at most
// ceil(load_factor × (in-flight total + 1) / n) requests; a full one is skipped and the walk
// goes on along the ring, so one hot prefix spills over instead of overloading its replica.
// Requests without a key (no prompt) go to the least loaded backend.
//
// The key: the request's leading text as the proxy cut it (prefix_chars bytes), hashed as it is;
// or, with `tokenizer:` set, the first `prefix_tokens` token ids the model's own tokenizer gives
// for that text, which is what a replica's prefix cache is keyed on. Tokenizing runs in choose(),
// under the pool's lock, so it is kept short: only the leading ~5 bytes per wanted token are
// encoded, and while that gives fewer than prefix_tokens + 8 tokens (the tokens just before a cut
// may split differently than in the whole text; the margin keeps the first prefix_tokens clear
// of it) a longer lead sized from the bytes per token seen so far. Each result is remembered by
// the hash of the text encoded, so requests that share their leading text (the case this policy
// is for) skip the tokenizer altogether. Costs: bench/prefix_affinity_bench.cpp.

#include <algorithm>
#include <cmath>
#include <optional>
#include <unordered_map>
#include <vector>

#include "formats/model_tokenizer.h"
#include "formats/tokenizer.h"
#include "router/balancing_policy.h"

namespace seekserve {
namespace {

// 64-bit FNV-1a, then a finaliser (splitmix64) so nearby keys spread over the ring.
uint64_t hash_bytes(std::string_view s, uint64_t seed) {
  uint64_t h = 1469598103934665603ULL ^ seed;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  h += 0x9e3779b97f4a7c15ULL;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

class PrefixAffinityPolicy final : public BalancingPolicy {
 public:
  PrefixAffinityPolicy(const PrefixAffinityConfig& c, std::optional<Tokenizer> tokenizer)
      : config_(c), tokenizer_(std::move(tokenizer)) {}
  const char* name() const override { return "prefix_affinity"; }
  bool wants_affinity_key() const override { return true; }

  size_t choose(std::span<const BackendLoad> candidates, const RouteRequest& request) override {
    const size_t n = candidates.size();
    int64_t total = 0;
    for (const BackendLoad& b : candidates) total += b.in_flight;
    if (request.affinity_key.empty()) {
      size_t best = 0;
      for (size_t i = 1; i < n; ++i)
        if (candidates[i].in_flight < candidates[best].in_flight) best = i;
      return best;
    }
    rebuild_ring(candidates);
    const auto cap = static_cast<int64_t>(
        std::ceil(config_.load_factor * static_cast<double>(total + 1) / static_cast<double>(n)));
    const uint64_t h = key_hash(request.affinity_key);
    auto it = std::lower_bound(ring_.begin(), ring_.end(), std::make_pair(h, BackendId{0}));
    for (size_t step = 0; step < ring_.size(); ++step, ++it) {
      if (it == ring_.end()) it = ring_.begin();
      const size_t idx = index_of(candidates, it->second);
      if (candidates[idx].in_flight < cap) return idx;
    }
    return 0;  // unreachable: the least loaded backend is always under the cap
  }

 private:
  uint64_t key_hash(std::string_view text) {
    if (!tokenizer_) return hash_bytes(text, 0);
    const size_t want = static_cast<size_t>(config_.prefix_tokens) + kTokenMargin;
    size_t len = std::min(text.size(), kBytesPerToken * want);
    for (;;) {  // a pure function of `text`: the lengths tried depend on nothing else
      const std::string_view part = text.substr(0, len);
      const uint64_t part_hash = hash_bytes(part, 0x70c3);
      if (memo_.size() >= kMemoEntries) memo_.clear();
      auto [it, added] = memo_.try_emplace(part_hash);
      Encoded& e = it->second;
      if (added) {
        ids_ = tokenizer_->encode(part, /*add_special=*/false, /*parse_special=*/false);
        e.tokens = ids_.size();
        e.enough = ids_.size() >= want || len == text.size();
        if (ids_.size() > static_cast<size_t>(config_.prefix_tokens))
          ids_.resize(config_.prefix_tokens);
        if (e.enough)
          e.key_hash = hash_bytes(std::string_view(reinterpret_cast<const char*>(ids_.data()),
                                                   ids_.size() * sizeof(int32_t)),
                                  0);
      }
      if (e.enough) return e.key_hash;
      // Enough bytes for `want` tokens at the rate seen so far, plus 10%; at least 1.25x.
      const size_t got = std::max<size_t>(e.tokens, 1);
      len = std::min(text.size(), std::max(len + len / 4, len * want * 11 / (got * 10)));
    }
  }

  static size_t index_of(std::span<const BackendLoad> candidates, BackendId id) {
    for (size_t i = 0; i < candidates.size(); ++i)
      if (candidates[i].id == id) return i;
    return 0;
  }

  void rebuild_ring(std::span<const BackendLoad> candidates) {
    std::vector<BackendId> ids;
    ids.reserve(candidates.size());
    for (const BackendLoad& b : candidates) ids.push_back(b.id);
    if (ids == ring_ids_) return;
    ring_ids_ = ids;
    ring_.clear();
    for (BackendId id : ids) {
      for (int v = 0; v < config_.virtual_nodes; ++v) {
        const std::string point = fmt::format("{}#{}", id, v);
        ring_.emplace_back(hash_bytes(point, 0x5eed), id);
      }
    }
    std::sort(ring_.begin(), ring_.end());
  }

  static constexpr size_t kBytesPerToken = 5;  // first guess; real text averages 3-5
  static constexpr size_t kTokenMargin = 8;
  static constexpr size_t kMemoEntries = 4096;

  PrefixAffinityConfig config_;
  std::optional<Tokenizer> tokenizer_;
  std::vector<int32_t> ids_;  // scratch of key_hash
  struct Encoded {
    size_t tokens = 0;    // in the text encoded
    bool enough = false;  // the key is decided (else a longer lead is needed)
    uint64_t key_hash = 0;
  };
  std::unordered_map<uint64_t, Encoded> memo_;  // hash of the text encoded -> what it gave
  std::vector<BackendId> ring_ids_;
  std::vector<std::pair<uint64_t, BackendId>> ring_;  // sorted (point, backend)
};

}  // namespace

Result<std::unique_ptr<BalancingPolicy>> make_prefix_affinity_policy(
    const PrefixAffinityConfig& config) {
  std::optional<Tokenizer> tokenizer;
  if (!config.tokenizer.empty()) {
    Result<TokenizerData> data = load_model_tokenizer(config.tokenizer);
    Result<Tokenizer> t = data.ok() ? Tokenizer::create(*data) : Result<Tokenizer>(data.status());
    // Named as a configuration error whatever went wrong with the file: exit code 2.
    if (!t.ok()) return invalid_argument("prefix_affinity.tokenizer: {}", t.status().message());
    tokenizer.emplace(std::move(t).value());
  }
  return std::unique_ptr<BalancingPolicy>(
      std::make_unique<PrefixAffinityPolicy>(config, std::move(tokenizer)));
}

}  // namespace seekserve
