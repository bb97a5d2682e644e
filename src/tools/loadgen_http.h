#pragma once
// The load generator's HTTP/1.1 pieces that need no socket: URL parsing, an incremental response
// parser (status line, headers, Content-Length / chunked / read-until-close bodies) and a
// Server-Sent Events splitter. Kept apart from the Asio client so they are unit-tested on bytes.
// Not thread-safe; one parser per connection.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace seekserve {

// http://HOST[:PORT][/BASE] (https is not supported: the targets are local servers and routers).
struct HttpUrl {
  std::string host;
  uint16_t port = 80;
  std::string base_path;  // without a trailing '/', "" for the root
};
Result<HttpUrl> parse_http_url(std::string_view url);

class HttpResponseParser {
 public:
  // Body bytes (de-chunked) as they arrive.
  using BodySink = std::function<void(std::string_view)>;

  // Consumes all of `data`. Returns false on a protocol error (error() says what); after done()
  // further bytes are ignored (a server must not send them before the next request).
  bool feed(std::string_view data, const BodySink& on_body);
  // The peer closed: completes a read-until-close body; anything else unfinished is an error.
  bool feed_eof();

  bool headers_done() const { return state_ > State::kHeaders; }
  bool done() const { return state_ == State::kDone; }
  bool any_bytes() const { return any_bytes_; }
  int status() const { return status_; }
  // The value of a header (name matched case-insensitively), "" when absent.
  std::string header(std::string_view name) const;
  // Whether the connection may carry another request after this response.
  bool keep_alive() const;
  const std::string& error() const { return error_; }

 private:
  enum class State {
    kStatusLine,
    kHeaders,
    kBody,
    kChunkSize,
    kChunkData,
    kChunkEnd,
    kTrailers,
    kDone,
    kError
  };
  bool fail(std::string message);
  bool take_line(std::string_view& data, std::string& line);
  bool on_headers_end();

  State state_ = State::kStatusLine;
  std::string line_;                                          // partial line across feeds
  std::vector<std::pair<std::string, std::string>> headers_;  // lower-case names
  int status_ = 0;
  bool http10_ = false, any_bytes_ = false;
  bool until_close_ = false;
  uint64_t remaining_ = 0;  // body or chunk bytes left
  std::string error_;
};

// At most `max` bytes of `text` on one line (control characters as spaces, "…" when cut): for
// quoting a peer's answer in a one-line error message.
std::string one_line_excerpt(std::string_view text, size_t max);

// Splits an SSE byte stream into events and returns each event's data (its `data:` lines joined
// by '\n'). Comments (": keep-alive") and events without data are dropped.
class SseSplitter {
 public:
  void feed(std::string_view bytes, std::vector<std::string>& events);

 private:
  std::string line_;
  std::string data_;
  bool has_data_ = false;
};

}  // namespace seekserve
