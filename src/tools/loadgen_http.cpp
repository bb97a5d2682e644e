#include "tools/loadgen_http.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace seekserve {

namespace {
std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}
std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}
constexpr size_t kMaxLine = 64 * 1024;
}  // namespace

Result<HttpUrl> parse_http_url(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return invalid_argument("--url: '{}' must start with http:// (https is not supported)", url);
  }
  std::string_view rest = url.substr(kScheme.size());
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  HttpUrl out;
  out.base_path = std::string(path);
  const size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']') == std::string_view::npos) {
    std::string_view port = authority.substr(colon + 1);
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || ptr != port.data() + port.size() || value == 0 || value > 65535) {
      return invalid_argument("--url: bad port '{}' in '{}'", port, url);
    }
    out.port = static_cast<uint16_t>(value);
    authority = authority.substr(0, colon);
  }
  if (authority.empty()) return invalid_argument("--url: no host in '{}'", url);
  out.host = std::string(authority);
  return out;
}

bool HttpResponseParser::fail(std::string message) {
  state_ = State::kError;
  error_ = std::move(message);
  return false;
}

// Takes one CRLF- (or LF-) terminated line from `data` into `line`; false when incomplete.
bool HttpResponseParser::take_line(std::string_view& data, std::string& line) {
  const size_t nl = data.find('\n');
  if (nl == std::string_view::npos) {
    line_.append(data);
    data = {};
    return false;
  }
  line_.append(data.substr(0, nl));
  data.remove_prefix(nl + 1);
  if (!line_.empty() && line_.back() == '\r') line_.pop_back();
  line.swap(line_);
  line_.clear();
  return true;
}

std::string HttpResponseParser::header(std::string_view name) const {
  const std::string key = lower(name);
  for (const auto& [k, v] : headers_) {
    if (k == key) return v;
  }
  return "";
}

bool HttpResponseParser::keep_alive() const {
  const std::string conn = lower(header("connection"));
  if (until_close_) return false;
  if (http10_) return conn == "keep-alive";
  return conn != "close";
}

bool HttpResponseParser::on_headers_end() {
  const std::string te = lower(header("transfer-encoding"));
  const std::string cl = header("content-length");
  if (status_ / 100 == 1 || status_ == 204 || status_ == 304) {
    state_ = State::kDone;
    return true;
  }
  if (te.find("chunked") != std::string::npos) {
    state_ = State::kChunkSize;
  } else if (!cl.empty()) {
    uint64_t n = 0;
    auto [ptr, ec] = std::from_chars(cl.data(), cl.data() + cl.size(), n);
    if (ec != std::errc() || ptr != cl.data() + cl.size()) return fail("bad Content-Length");
    remaining_ = n;
    state_ = n == 0 ? State::kDone : State::kBody;
  } else {
    until_close_ = true;
    state_ = State::kBody;
  }
  return true;
}

bool HttpResponseParser::feed(std::string_view data, const BodySink& on_body) {
  if (!data.empty()) any_bytes_ = true;
  std::string line;
  while (!data.empty()) {
    switch (state_) {
      case State::kDone:
        return true;
      case State::kError:
        return false;
      case State::kStatusLine: {
        if (!take_line(data, line)) break;
        // HTTP/1.1 200 OK
        if (line.rfind("HTTP/1.", 0) != 0 || line.size() < 12 || line[8] != ' ') {
          return fail("not an HTTP response (first line: '" + line.substr(0, 60) + "')");
        }
        http10_ = line[7] == '0';
        int code = 0;
        auto [ptr, ec] = std::from_chars(line.data() + 9, line.data() + 12, code);
        if (ec != std::errc() || ptr != line.data() + 12) return fail("bad HTTP status line");
        status_ = code;
        state_ = State::kHeaders;
        break;
      }
      case State::kHeaders:
      case State::kTrailers: {
        if (!take_line(data, line)) break;
        if (line.empty()) {
          if (state_ == State::kTrailers) {
            state_ = State::kDone;
          } else if (!on_headers_end()) {
            return false;
          }
          break;
        }
        if (state_ == State::kHeaders) {
          const size_t colon = line.find(':');
          if (colon == std::string::npos) return fail("bad HTTP header line");
          headers_.emplace_back(lower(trim(std::string_view(line).substr(0, colon))),
                                std::string(trim(std::string_view(line).substr(colon + 1))));
        }
        break;
      }
      case State::kBody: {
        if (until_close_) {
          on_body(data);
          data = {};
          break;
        }
        const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size()));
        on_body(data.substr(0, n));
        data.remove_prefix(n);
        remaining_ -= n;
        if (remaining_ == 0) state_ = State::kDone;
        break;
      }
      case State::kChunkSize: {
        if (!take_line(data, line)) break;
        std::string_view hex = trim(std::string_view(line).substr(0, line.find(';')));
        uint64_t n = 0;
        auto [ptr, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), n, 16);
        if (hex.empty() || ec != std::errc() || ptr != hex.data() + hex.size()) {
          return fail("bad chunk size line");
        }
        remaining_ = n;
        state_ = n == 0 ? State::kTrailers : State::kChunkData;
        break;
      }
      case State::kChunkData: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size()));
        on_body(data.substr(0, n));
        data.remove_prefix(n);
        remaining_ -= n;
        if (remaining_ == 0) state_ = State::kChunkEnd;
        break;
      }
      case State::kChunkEnd: {
        if (!take_line(data, line)) break;
        if (!line.empty()) return fail("chunk not followed by CRLF");
        state_ = State::kChunkSize;
        break;
      }
    }
    if (line_.size() > kMaxLine) return fail("HTTP line longer than 64 KiB");
  }
  return state_ != State::kError;
}

bool HttpResponseParser::feed_eof() {
  if (state_ == State::kDone) return true;
  if (state_ == State::kBody && until_close_) {
    state_ = State::kDone;
    return true;
  }
  if (state_ == State::kError) return false;
  return fail(any_bytes_ ? "connection closed in the middle of the response"
                         : "connection closed without a response");
}

std::string one_line_excerpt(std::string_view text, size_t max) {
  std::string out;
  for (char c : text.substr(0, max)) {
    const bool control = static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
    if (control && !out.empty() && out.back() == ' ') continue;
    out += control ? ' ' : c;
  }
  if (text.size() > max) out += "…";
  return out;
}

void SseSplitter::feed(std::string_view bytes, std::vector<std::string>& events) {
  while (!bytes.empty()) {
    const size_t nl = bytes.find('\n');
    if (nl == std::string_view::npos) {
      line_.append(bytes);
      return;
    }
    line_.append(bytes.substr(0, nl));
    bytes.remove_prefix(nl + 1);
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    if (line_.empty()) {  // end of event
      if (has_data_) events.push_back(std::move(data_));
      data_.clear();
      has_data_ = false;
    } else if (line_.rfind("data:", 0) == 0) {
      std::string_view value = std::string_view(line_).substr(5);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      if (has_data_) data_ += '\n';
      data_.append(value);
      has_data_ = true;
    }  // comments, event:, id:, retry: are not needed
    line_.clear();
  }
}

}  // namespace seekserve
