// seekserve bench's socket-free parts: URL, HTTP response and SSE parsing fed byte by byte, the
// figures' definitions on hand-made records, option parsing, and token-exact synthetic prompts
// with the real DeepSeek-V3 tokenizer. The load itself is tested against a real server in
// tests/tools/bench_test.sh.

#include <cmath>
#include <fstream>
#include <map>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../formats/tokenizer_test_util.h"
#include "tools/bench_metrics.h"
#include "tools/bench_workload.h"
#include "tools/loadgen_http.h"

namespace seekserve {
namespace {

using nlohmann::json;

TEST(LoadgenHttp, ParsesUrls) {
  auto u = parse_http_url("http://127.0.0.1:8123");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 8123);
  EXPECT_EQ(u->base_path, "");
  u = parse_http_url("http://example.org/api/");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->port, 80);
  EXPECT_EQ(u->base_path, "/api");
  EXPECT_FALSE(parse_http_url("https://x").ok());
  EXPECT_FALSE(parse_http_url("http://:80").ok());
  EXPECT_FALSE(parse_http_url("http://h:99999").ok());
  EXPECT_FALSE(parse_http_url("localhost:8000").ok());
}

// Feeds `wire` one byte at a time (every split point) and returns the body.
std::string feed_bytewise(HttpResponseParser& p, std::string_view wire) {
  std::string body;
  for (char c : wire) {
    EXPECT_TRUE(p.feed(std::string_view(&c, 1), [&](std::string_view b) { body.append(b); }))
        << p.error();
  }
  return body;
}

TEST(LoadgenHttp, ChunkedBodyAcrossEverySplit) {
  const std::string wire =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
      "6\r\ndata: \r\n"
      "9;ext=1\r\n{\"x\":1}\n\n\r\n"
      "0\r\n\r\n";
  HttpResponseParser p;
  EXPECT_EQ(feed_bytewise(p, wire), "data: {\"x\":1}\n\n");
  EXPECT_TRUE(p.done());
  EXPECT_EQ(p.status(), 200);
  EXPECT_EQ(p.header("CONTENT-TYPE"), "text/event-stream");
  EXPECT_TRUE(p.keep_alive());
}

TEST(LoadgenHttp, ContentLengthCloseAndUntilEof) {
  HttpResponseParser p;
  std::string body;
  ASSERT_TRUE(p.feed("HTTP/1.1 429 Too Many\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                     [&](std::string_view b) { body.append(b); }));
  EXPECT_TRUE(p.done());
  EXPECT_EQ(body, "hello");
  EXPECT_EQ(p.status(), 429);
  EXPECT_FALSE(p.keep_alive());

  HttpResponseParser q;
  body.clear();
  ASSERT_TRUE(q.feed("HTTP/1.0 200 OK\r\n\r\nabc", [&](std::string_view b) { body.append(b); }));
  EXPECT_FALSE(q.done());
  EXPECT_TRUE(q.feed_eof());
  EXPECT_TRUE(q.done());
  EXPECT_EQ(body, "abc");
  EXPECT_FALSE(q.keep_alive());
}

TEST(LoadgenHttp, RejectsWhatIsNotHttp) {
  HttpResponseParser p;
  EXPECT_FALSE(p.feed("SSH-2.0-OpenSSH_9.2\r\n", [](std::string_view) {}));
  EXPECT_NE(p.error().find("not an HTTP response"), std::string::npos);
  HttpResponseParser q;
  EXPECT_FALSE(q.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                      [](std::string_view) {}));
  HttpResponseParser r;
  EXPECT_TRUE(r.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", [](std::string_view) {}));
  EXPECT_FALSE(r.feed_eof());
  EXPECT_NE(r.error().find("closed in the middle"), std::string::npos);
  HttpResponseParser s;
  EXPECT_FALSE(s.feed_eof());
  EXPECT_NE(s.error().find("without a response"), std::string::npos);
}

TEST(LoadgenHttp, SseEventsCommentsAndCrlf) {
  const std::string stream =
      ": keep-alive\n\ndata: {\"a\":1}\r\n\r\ndata: line1\ndata: line2\n\nevent: x\n\ndata: "
      "[DONE]\n\n";
  SseSplitter sse;
  std::vector<std::string> events;
  for (char c : stream) sse.feed(std::string_view(&c, 1), events);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0], "{\"a\":1}");
  EXPECT_EQ(events[1], "line1\nline2");
  EXPECT_EQ(events[2], "[DONE]");
}

TEST(BenchMetrics, PercentilesInterpolateLikeNumpy) {
  // numpy.percentile([1,2,3,4,10], [50, 90, 99]) = 3, 7.6, 9.76
  const Distribution d = distribution_of({4, 1, 10, 3, 2});
  EXPECT_DOUBLE_EQ(d.median, 3);
  EXPECT_NEAR(d.p90, 7.6, 1e-12);
  EXPECT_NEAR(d.p99, 9.76, 1e-12);
  EXPECT_DOUBLE_EQ(d.mean, 4);
  EXPECT_DOUBLE_EQ(d.min, 1);
  EXPECT_DOUBLE_EQ(d.max, 10);
  EXPECT_NEAR(d.std, std::sqrt(10.0), 1e-12);  // population std
  EXPECT_EQ(distribution_of({}).n, 0u);
}

TEST(BenchMetrics, NonStreamingHasNoTpotOrItl) {
  // --no-stream: the answer comes whole, TTFT = e2e; TPOT and ITL are absent, not zero.
  std::vector<RequestRecord> recs(2);
  recs[0] = {true, 200, "", "", 0, 0, 0.5, 0.5, {}, 20, 8, true, false};
  recs[1] = {true, 200, "", "", 0, 0, 0.7, 0.7, {}, 20, 8, true, false};
  const BenchSummary s = summarize(recs, 1.0, Slo{});
  EXPECT_FALSE(s.streamed);
  EXPECT_EQ(s.tpot.n, 0u);
  EXPECT_EQ(s.itl.n, 0u);
  EXPECT_DOUBLE_EQ(s.ttft.median, s.e2e.median);
  const json j = summary_to_json(s);
  EXPECT_FALSE(j["streamed"].get<bool>());
  EXPECT_TRUE(j["tpot_ms"].is_null());
  EXPECT_TRUE(j["itl_ms"].is_null());
  EXPECT_EQ(j["ttft_ms"]["n"], 2);
  const std::string table = format_summary(s, Slo{});
  EXPECT_NE(table.find("TPOT (ms):"), std::string::npos);
  EXPECT_NE(table.find("n/a"), std::string::npos);
  EXPECT_EQ(table.find("Mean TPOT"), std::string::npos);
}

TEST(BenchMetrics, SummaryFollowsVllmDefinitions) {
  std::vector<RequestRecord> recs(4);
  // 1: ttft 0.1, e2e 1.1, 11 tokens -> tpot 0.1; 2: ttft 0.6 (misses ttft SLO), tpot 0.02
  recs[0] = {true, 200, "", "", 0, 0, 0.1, 1.1, {0.1, 0.1}, 20, 11, true};
  recs[1] = {true, 200, "", "", 10, 0, 0.6, 0.8, {0.2}, 30, 11, true};
  // 3: one token: no TPOT; 4: failed
  recs[2] = {true, 200, "", "", 0, 0, 0.2, 0.2, {}, 10, 1, true};
  recs[3] = {false, 429, "", "queue full", 0, 0, -1, 0.01, {}, 0, 0, false};
  Slo slo;
  slo.ttft_s = 0.5;
  slo.tpot_s = 0.05;
  const BenchSummary s = summarize(recs, 2.0, slo);
  EXPECT_EQ(s.completed, 3);
  EXPECT_EQ(s.failed, 1);
  EXPECT_EQ(s.failures.at("HTTP 429"), 1);
  EXPECT_EQ(s.failure_examples.at("HTTP 429"), "queue full");
  EXPECT_EQ(s.input_tokens, 60);
  EXPECT_EQ(s.output_tokens, 23);
  EXPECT_DOUBLE_EQ(s.request_throughput, 1.5);
  EXPECT_DOUBLE_EQ(s.output_throughput, 11.5);
  EXPECT_DOUBLE_EQ(s.input_throughput, 30);
  EXPECT_EQ(s.tpot.n, 2u);
  EXPECT_NEAR(s.tpot.mean, (0.1 + 0.02) / 2, 1e-12);
  EXPECT_EQ(s.itl.n, 3u);
  EXPECT_EQ(s.e2e.n, 3u);
  // Goodput: request 1 misses the TPOT SLO (0.1 s), request 2 the TTFT SLO (0.6 s); request 3
  // has one token (its TPOT counts as 0) and TTFT 0.2 s: one good request in 2 s.
  ASSERT_TRUE(s.goodput.has_value());
  EXPECT_DOUBLE_EQ(*s.goodput, 0.5);
  ASSERT_EQ(s.by_priority.size(), 2u);  // priorities 0 and 10
  EXPECT_EQ(s.by_priority.at(0).second.n, 2u);
  const json j = summary_to_json(s);
  for (const char* key :
       {"completed", "failed", "failures", "request_throughput", "input_token_throughput",
        "output_token_throughput", "goodput", "ttft_ms", "tpot_ms", "itl_ms", "e2e_ms", "warmup"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_DOUBLE_EQ(j["ttft_ms"]["p50"].get<double>(), 200.0);
}

TEST(BenchOptions, ParsesSloLengthsAndPriorities) {
  auto slo = parse_slo("ttft=500ms,tpot=50ms,e2e=2s");
  ASSERT_TRUE(slo.ok());
  EXPECT_DOUBLE_EQ(*slo->ttft_s, 0.5);
  EXPECT_DOUBLE_EQ(*slo->tpot_s, 0.05);
  EXPECT_DOUBLE_EQ(*slo->e2e_s, 2.0);
  EXPECT_FALSE(parse_slo("ttft=fast").ok());
  EXPECT_FALSE(parse_slo("latency=1s").ok());
  auto len = parse_length_spec("64:256", "--input-len");
  ASSERT_TRUE(len.ok());
  EXPECT_EQ(len->min, 64);
  EXPECT_EQ(len->max, 256);
  EXPECT_FALSE(parse_length_spec("0", "--input-len").ok());
  EXPECT_FALSE(parse_length_spec("9:3", "--input-len").ok());
  auto mix = parse_priority_mix("0:3,10:1");
  ASSERT_TRUE(mix.ok());
  ASSERT_EQ(mix->entries.size(), 2u);
  EXPECT_EQ(mix->entries[1].first, 10);
  EXPECT_FALSE(parse_priority_mix("0").ok());
  EXPECT_FALSE(parse_priority_mix("0:-1").ok());
}

TEST(BenchWorkload, TokenExactSharedPrefixAndPriorityMix) {
  const Tokenizer& tok = testing::v3_tokenizer();
  WorkloadOptions o;
  o.chat = false;
  o.model = "m";
  o.input_len = {40, 90};
  o.output_len = {7, 7};
  o.prefix_groups = 3;
  o.prefix_len = 16;
  o.priorities.entries = {{0, 3}, {10, 1}};
  auto w = Workload::create(o, &tok);
  ASSERT_TRUE(w.ok()) << w.status().message();
  std::map<int, int> prio;
  std::set<std::string> prompts;
  std::map<int64_t, std::vector<int32_t>> prefix_of_group;
  for (int64_t i = 0; i < 60; ++i) {
    const BenchPrompt p = (*w)->make(i);
    const json body = json::parse(p.body);
    const std::string text = body["prompt"].get<std::string>();
    const std::vector<int32_t> ids = tok.encode(text, /*add_special=*/true);
    EXPECT_EQ(static_cast<int64_t>(ids.size()), p.input_tokens) << text;
    EXPECT_GE(p.input_tokens, 40);
    EXPECT_LE(p.input_tokens, 90);
    EXPECT_EQ(body["max_tokens"], 7);
    EXPECT_EQ(body["stream"], true);
    EXPECT_EQ(body["stream_options"]["include_usage"], true);
    EXPECT_EQ(body["priority"], p.priority);
    ++prio[p.priority];
    prompts.insert(text);
    // The first 1 + 16 tokens (BOS + prefix) are the group's shared prefix.
    std::vector<int32_t> head(ids.begin(), ids.begin() + 17);
    auto [it, inserted] = prefix_of_group.emplace(i % 3, head);
    if (!inserted) {
      EXPECT_EQ(it->second, head);
    }
    EXPECT_EQ((*w)->make(i).body, p.body);  // deterministic
  }
  EXPECT_EQ(prompts.size(), 60u);  // distinct suffixes
  EXPECT_NE(prefix_of_group[0], prefix_of_group[1]);
  EXPECT_EQ(prio.size(), 2u);
  EXPECT_GT(prio[0], prio[10]);  // 3:1
}

TEST(BenchWorkload, ChatAndDatasetAndBadDataset) {
  WorkloadOptions o;
  o.chat = true;
  o.input_len = {8, 8};
  auto w = Workload::create(o, nullptr);
  ASSERT_TRUE(w.ok());
  const json body = json::parse((*w)->make(0).body);
  EXPECT_EQ(body["messages"][0]["role"], "user");
  EXPECT_FALSE(body.contains("priority"));

  const std::string path = ::testing::TempDir() + "/bench_dataset.jsonl";
  {
    std::ofstream f(path);
    f << "{\"prompt\": \"hello\", \"max_tokens\": 5}\n\n"
      << "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"priority\": 3}\n";
  }
  o.dataset = path;
  w = Workload::create(o, nullptr);
  ASSERT_TRUE(w.ok()) << w.status().message();
  const json a = json::parse((*w)->make(0).body), b = json::parse((*w)->make(1).body);
  EXPECT_EQ(a["messages"][0]["content"], "hello");
  EXPECT_EQ(a["max_tokens"], 5);
  EXPECT_EQ(b["messages"][0]["content"], "hi");
  EXPECT_EQ(b["priority"], 3);
  o.chat = false;  // chat messages need the chat endpoint
  EXPECT_FALSE(Workload::create(o, nullptr).ok());
  {
    std::ofstream f(path);
    f << "{\"text\": 1}\n";
  }
  o.chat = true;
  auto bad = Workload::create(o, nullptr);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(":1:"), std::string::npos);
}

TEST(BenchMetrics, SweepSvgHasEveryLevel) {
  std::vector<BenchSummary> levels(2);
  levels[0].label = "concurrency=1";
  levels[0].request_throughput = 1.5;
  levels[0].e2e.median = 0.5;
  levels[0].e2e.p99 = 0.9;
  levels[1].label = "concurrency=2 <&>";
  levels[1].request_throughput = 2.5;
  levels[1].e2e.p99 = 1.9;
  const std::string svg = sweep_svg(levels, "t");
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("concurrency=2 &lt;&amp;&gt;"), std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
}

}  // namespace
}  // namespace seekserve
