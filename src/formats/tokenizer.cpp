#include "formats/tokenizer.h"

#include <algorithm>
#include <array>
#include <functional>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "core/check.h"
#include "formats/pre_tokenizer.h"
#include "formats/utf8.h"

namespace seekserve {
namespace {

// GPT-2's byte <-> character mapping: printable bytes stand for themselves, the other 68 bytes
// are moved to U+0100.. in byte order, so every byte string has a printable spelling.
struct ByteMap {
  std::array<char32_t, 256> byte_to_char{};
  std::array<int16_t, 512> char_to_byte{};  // -1 where the character stands for no byte

  ByteMap() {
    char_to_byte.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
      byte_to_char[b] = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(next++);
      char_to_byte[byte_to_char[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap map;
  return map;
}

// The bytes a vocabulary entry in byte-level spelling stands for, or nullopt when it contains a
// character outside the mapping (then it is not a byte-level token and stands for its own text).
std::optional<std::string> byte_level_decode(std::string_view token) {
  const ByteMap& map = byte_map();
  std::string out;
  out.reserve(token.size());
  for (size_t pos = 0; pos < token.size();) {
    const Utf8Step step = utf8_step(token, pos);
    if (step.kind != Utf8Kind::kValid || step.codepoint >= map.char_to_byte.size() ||
        map.char_to_byte[step.codepoint] < 0) {
      return std::nullopt;
    }
    out.push_back(static_cast<char>(map.char_to_byte[step.codepoint]));
    pos += step.length;
  }
  return out;
}

// SentencePiece-style byte tokens ("<0x0A>"), which GGUF marks kByte.
std::optional<uint8_t> byte_token_value(std::string_view text) {
  if (text.size() != 6 || !text.starts_with("<0x") || text[5] != '>') return std::nullopt;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(text[3]), lo = hex(text[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<uint8_t>(hi * 16 + lo);
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenIndex = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// (left id, right id) -> (rank, merged id), open addressing. Read-only after build.
class MergeTable {
 public:
  struct Entry {
    uint64_t key = kEmpty;
    int32_t rank = 0;
    int32_t merged = 0;
  };
  static constexpr uint64_t kEmpty = ~0ull;

  explicit MergeTable(size_t n_merges) {
    size_t capacity = 16;
    while (capacity < n_merges * 2) capacity *= 2;
    entries_.resize(capacity);
    mask_ = capacity - 1;
  }

  static uint64_t key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }

  // A later merge of the same pair replaces the earlier one, as HF's and transformers.js's maps
  // do when they are built from the list.
  void insert(int32_t left, int32_t right, int32_t rank, int32_t merged) {
    const uint64_t k = key(left, right);
    for (size_t i = slot(k);; i = (i + 1) & mask_) {
      if (entries_[i].key == kEmpty || entries_[i].key == k) {
        entries_[i] = {k, rank, merged};
        return;
      }
    }
  }

  const Entry* find(int32_t left, int32_t right) const {
    const uint64_t k = key(left, right);
    for (size_t i = slot(k);; i = (i + 1) & mask_) {
      const Entry& e = entries_[i];
      if (e.key == k) return &e;
      if (e.key == kEmpty) return nullptr;
    }
  }

 private:
  size_t slot(uint64_t k) const { return (k * 0x9E3779B97F4A7C15ull) >> 20 & mask_; }
  std::vector<Entry> entries_;
  size_t mask_ = 0;
};

// Byte trie over the added tokens for leftmost-longest matching.
class AddedTokenTrie {
 public:
  AddedTokenTrie() : nodes_(1) {}

  void insert(std::string_view text, int32_t id, bool control) {
    uint32_t node = 0;
    for (char c : text) {
      const auto byte = static_cast<uint8_t>(c);
      uint32_t child = find_child(node, byte);
      if (child == 0) {
        child = static_cast<uint32_t>(nodes_.size());
        nodes_.emplace_back();
        nodes_[node].children.push_back({byte, child});
      }
      node = child;
    }
    nodes_[node].id = id;
    nodes_[node].control = control;
    starts_[static_cast<uint8_t>(text[0])] = true;
  }

  bool may_start(uint8_t byte) const { return starts_[byte]; }

  // The longest token starting at text[pos] (control ones only when allowed): {id, length} or
  // {-1, 0}.
  std::pair<int32_t, size_t> longest(std::string_view text, size_t pos, bool allow_control) const {
    std::pair<int32_t, size_t> best{-1, 0};
    uint32_t node = 0;
    for (size_t i = pos; i < text.size(); ++i) {
      node = find_child(node, static_cast<uint8_t>(text[i]));
      if (node == 0) break;
      const Node& n = nodes_[node];
      if (n.id >= 0 && (allow_control || !n.control)) best = {n.id, i + 1 - pos};
    }
    return best;
  }

 private:
  struct Node {
    int32_t id = -1;
    bool control = false;
    std::vector<std::pair<uint8_t, uint32_t>> children;
  };
  uint32_t find_child(uint32_t node, uint8_t byte) const {
    for (const auto& [b, child] : nodes_[node].children) {
      if (b == byte) return child;
    }
    return 0;  // the root is never a child
  }
  std::vector<Node> nodes_;
  std::array<bool, 256> starts_{};
};

// Word -> ids for pieces seen before. Sharded so that threads rarely wait on each other;
// a full shard is simply emptied (the cache is an accelerator, never a source of truth).
class WordCache {
 public:
  static constexpr size_t kMaxWordBytes = 64;

  bool lookup(std::string_view word, std::vector<int32_t>& out) {
    Shard& shard = shard_for(word);
    std::lock_guard<std::mutex> lock(shard.mu);
    auto it = shard.map.find(word);
    if (it == shard.map.end()) return false;
    out.insert(out.end(), it->second.begin(), it->second.end());
    return true;
  }

  void store(std::string_view word, std::span<const int32_t> ids) {
    Shard& shard = shard_for(word);
    std::lock_guard<std::mutex> lock(shard.mu);
    if (shard.map.size() >= kMaxEntriesPerShard) shard.map.clear();
    shard.map.emplace(std::string(word), std::vector<int32_t>(ids.begin(), ids.end()));
  }

 private:
  static constexpr size_t kShards = 16;
  static constexpr size_t kMaxEntriesPerShard = 1 << 14;
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> map;
  };
  Shard& shard_for(std::string_view word) { return shards_[StringHash{}(word) % kShards]; }
  std::array<Shard, kShards> shards_;
};

}  // namespace

// Per-call working memory of encode(): the BPE merge loop and the pre-tokenizer's pieces.
struct Tokenizer::Scratch {
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    int32_t length;  // bytes; 0 once merged into its left neighbour
  };
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t merged;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
  std::vector<TextPiece> pieces;
};

struct Tokenizer::Impl {
  explicit Impl(size_t n_merges) : merges(n_merges) {}
  std::string pre;
  TokenIndex token_to_id;
  std::array<int32_t, 256> byte_ids{};
  MergeTable merges;
  AddedTokenTrie added;
  bool has_added = false;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  mutable WordCache cache;
};

Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Result<Tokenizer> Tokenizer::load_json(const std::string& path) {
  SEEK_ASSIGN_OR_RETURN(TokenizerData data, load_tokenizer_json(path));
  return create(data);
}

Result<Tokenizer> Tokenizer::create(const TokenizerData& data) {
  const size_t n = data.tokens.size();
  if (n == 0) return data_loss("tokenizer: no tokens");
  if (n > static_cast<size_t>(INT32_MAX)) return data_loss("tokenizer: too many tokens ({})", n);
  if (data.token_types.size() != n) {
    return data_loss("tokenizer: {} tokens but {} token types", n, data.token_types.size());
  }
  Tokenizer tok;
  tok.impl_ = std::make_unique<Impl>(data.merges.size());
  Impl& impl = *tok.impl_;
  impl.pre = data.pre;
  SEEK_ASSIGN_OR_RETURN(impl.pre_tokenizer, PreTokenizer::create(data.pre));

  tok.tokens_ = data.tokens;
  tok.types_ = data.token_types;
  tok.bytes_.resize(n);
  impl.token_to_id.reserve(n);
  for (size_t id = 0; id < n; ++id) {
    const std::string& text = data.tokens[id];
    const TokenType type = data.token_types[id];
    if (type == TokenType::kUnused) continue;  // placeholders: no text, no lookup
    if (text.empty()) return data_loss("tokenizer: token {} is empty", id);
    if (!impl.token_to_id.emplace(text, static_cast<int32_t>(id)).second) {
      return data_loss("tokenizer: token '{}' appears twice (ids {} and {})", text,
                       impl.token_to_id[text], id);
    }
    if (type == TokenType::kControl || type == TokenType::kUserDefined) {
      tok.bytes_[id] = text;
      impl.added.insert(text, static_cast<int32_t>(id), type == TokenType::kControl);
      impl.has_added = true;
    } else if (std::optional<uint8_t> byte = byte_token_value(text);
               type == TokenType::kByte && byte) {
      tok.bytes_[id] = std::string(1, static_cast<char>(*byte));
    } else {
      std::optional<std::string> bytes = byte_level_decode(text);
      tok.bytes_[id] = bytes ? std::move(*bytes) : text;
    }
  }

  const ByteMap& map = byte_map();
  for (int b = 0; b < 256; ++b) {
    std::string spelling;
    utf8_append(spelling, map.byte_to_char[b]);
    auto it = impl.token_to_id.find(spelling);
    if (it == impl.token_to_id.end()) {
      return data_loss("tokenizer: no token for byte 0x{:02X} ('{}'): not a byte-level BPE", b,
                       spelling);
    }
    impl.byte_ids[b] = it->second;
  }

  for (size_t rank = 0; rank < data.merges.size(); ++rank) {
    const std::string& merge = data.merges[rank];
    const size_t space = merge.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 >= merge.size()) {
      return data_loss("tokenizer: merge {} '{}' is not \"a b\"", rank, merge);
    }
    const std::string_view left(merge.data(), space);
    const std::string_view right(merge.data() + space + 1, merge.size() - space - 1);
    auto l = impl.token_to_id.find(left);
    auto r = impl.token_to_id.find(right);
    auto m = impl.token_to_id.find(std::string(left) + std::string(right));
    if (l == impl.token_to_id.end() || r == impl.token_to_id.end() || m == impl.token_to_id.end()) {
      return data_loss("tokenizer: merge {} '{}' refers to a token not in the vocabulary", rank,
                       merge);
    }
    impl.merges.insert(l->second, r->second, static_cast<int32_t>(rank), m->second);
  }

  auto check_id = [n](int64_t id, const char* what) -> Status {
    if (id < -1 || id >= static_cast<int64_t>(n)) {
      return data_loss("tokenizer: {} id {} out of range [0, {})", what, id, n);
    }
    return Status::ok_status();
  };
  SEEK_RETURN_IF_ERROR(check_id(data.bos_id, "bos"));
  SEEK_RETURN_IF_ERROR(check_id(data.eos_id, "eos"));
  tok.bos_id_ = static_cast<int32_t>(data.bos_id);
  tok.eos_id_ = static_cast<int32_t>(data.eos_id);
  tok.add_bos_ = data.add_bos && data.bos_id >= 0;
  tok.chat_template_ = data.chat_template;
  return tok;
}

const std::string& Tokenizer::pre() const {
  return impl_->pre;
}

bool Tokenizer::is_real_token(int64_t id) const {
  return id >= 0 && id < static_cast<int64_t>(tokens_.size()) && types_[id] != TokenType::kUnused;
}

std::string_view Tokenizer::token_bytes(int64_t id) const {
  return is_real_token(id) ? std::string_view(bytes_[id]) : std::string_view();
}

std::string_view Tokenizer::token_text(int64_t id) const {
  return id >= 0 && id < static_cast<int64_t>(tokens_.size()) ? std::string_view(tokens_[id])
                                                              : std::string_view();
}

TokenType Tokenizer::token_type(int64_t id) const {
  return id >= 0 && id < static_cast<int64_t>(tokens_.size()) ? types_[id] : TokenType::kUnused;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token_text) const {
  auto it = impl_->token_to_id.find(token_text);
  if (it == impl_->token_to_id.end()) return std::nullopt;
  return it->second;
}

void Tokenizer::encode_piece(std::string_view piece, Scratch& s, std::vector<int32_t>& out) const {
  Impl& impl = *impl_;
  if (piece.size() == 1) {
    out.push_back(impl.byte_ids[static_cast<uint8_t>(piece[0])]);
    return;
  }
  const bool cacheable = piece.size() <= WordCache::kMaxWordBytes;
  if (cacheable && impl.cache.lookup(piece, out)) return;

  const int32_t n = static_cast<int32_t>(piece.size());
  s.symbols.resize(n);
  for (int32_t i = 0; i < n; ++i) {
    s.symbols[i] = {impl.byte_ids[static_cast<uint8_t>(piece[i])], i - 1, i + 1 < n ? i + 1 : -1,
                    1};
  }
  s.heap.clear();
  auto consider = [&](int32_t pos) {
    const Scratch::Symbol& left = s.symbols[pos];
    if (left.next < 0) return;
    const MergeTable::Entry* e = impl.merges.find(left.id, s.symbols[left.next].id);
    if (e == nullptr) return;
    s.heap.push_back({e->rank, pos, e->merged});
    std::push_heap(s.heap.begin(), s.heap.end(), std::greater<>());
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);
  while (!s.heap.empty()) {
    std::pop_heap(s.heap.begin(), s.heap.end(), std::greater<>());
    const Scratch::Candidate top = s.heap.back();
    s.heap.pop_back();
    Scratch::Symbol& left = s.symbols[top.pos];
    // Stale candidates: the left symbol was absorbed, or its right neighbour changed. A symbol
    // only ever grows to the right, so an unchanged merged id means an unchanged pair.
    if (left.length == 0 || left.next < 0) continue;
    Scratch::Symbol& right = s.symbols[left.next];
    const MergeTable::Entry* e = impl.merges.find(left.id, right.id);
    if (e == nullptr || e->merged != top.merged) continue;
    left.id = top.merged;
    left.length += right.length;
    right.length = 0;
    left.next = right.next;
    if (left.next >= 0) s.symbols[left.next].prev = top.pos;
    if (left.prev >= 0) consider(left.prev);
    consider(top.pos);
  }
  const size_t first = out.size();
  for (int32_t i = 0; i >= 0; i = s.symbols[i].next) out.push_back(s.symbols[i].id);
  if (cacheable) impl.cache.store(piece, std::span<const int32_t>(out).subspan(first));
}

void Tokenizer::encode_text(std::string_view text, Scratch& s, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  s.pieces.clear();
  impl_->pre_tokenizer->split(text, s.pieces);
  for (const TextPiece& piece : s.pieces) {
    encode_piece(text.substr(piece.offset, piece.length), s, out);
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  SEEK_CHECK(text.size() < (1ull << 32), "Tokenizer::encode: text must be < 4 GiB");
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_special && add_bos_) out.push_back(bos_id_);
  // Scratch lives on this call's stack: concurrent calls never share it.
  Scratch scratch;
  const Impl& impl = *impl_;
  size_t segment = 0;
  if (impl.has_added) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(text.data());
    for (size_t pos = 0; pos < text.size();) {
      if (!impl.added.may_start(bytes[pos])) {
        ++pos;
        continue;
      }
      const auto [id, length] = impl.added.longest(text, pos, parse_special);
      if (id < 0) {
        ++pos;
        continue;
      }
      encode_text(text.substr(segment, pos - segment), scratch, out);
      out.push_back(id);
      pos += length;
      segment = pos;
    }
  }
  encode_text(text.substr(segment), scratch, out);
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string out;
  for (int32_t id : ids) {
    if (!is_real_token(id)) continue;
    if (skip_special && types_[id] == TokenType::kControl) continue;
    out += bytes_[id];
  }
  return out;
}

std::string StreamDecoder::push(int32_t id) {
  if (!tokenizer_->is_real_token(id)) return {};
  if (skip_special_ && tokenizer_->token_type(id) == TokenType::kControl) return {};
  pending_ += tokenizer_->token_bytes(id);
  std::string out;
  size_t pos = 0;
  while (pos < pending_.size()) {
    const Utf8Step step = utf8_step(pending_, pos);
    if (step.kind == Utf8Kind::kIncomplete) break;  // wait for the bytes that finish it
    if (step.kind == Utf8Kind::kValid) {
      out.append(pending_, pos, step.length);
    } else {
      out += kUtf8Replacement;
    }
    pos += step.length;
  }
  pending_.erase(0, pos);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out = utf8_sanitize(pending_);
  pending_.clear();
  return out;
}

}  // namespace seekserve
