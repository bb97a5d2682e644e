#pragma once
// A backend's address as the router uses it: plain HTTP to host:port. A URL may carry a trailing
// "/" but no other path, no query and no user info; https is not spoken (terminate TLS in front).

#include <string>

#include "core/status.h"

namespace seekserve {

struct BackendUrl {
  std::string host;  // name or IPv4/IPv6 literal (without brackets)
  int port = 80;     // 1..65535
  std::string text;  // normalised "http://host:port"
};

// Parses and checks `text`; `field` names it in the error ("backends[1].url").
Result<BackendUrl> parse_backend_url(const std::string& text, const std::string& field);

}  // namespace seekserve
