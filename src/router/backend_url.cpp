#include "router/backend_url.h"

#include <netdb.h>
#include <sys/socket.h>

#include <cctype>

namespace seekserve {

Result<BackendUrl> parse_backend_url(const std::string& text, const std::string& field) {
  const std::string scheme = "http://";
  if (text.starts_with("https://"))
    return invalid_argument("{}: '{}': https is not supported (the router speaks plain HTTP)",
                            field, text);
  if (!text.starts_with(scheme))
    return invalid_argument("{}: '{}' is not an http:// URL", field, text);
  std::string rest = text.substr(scheme.size());
  if (rest.ends_with("/")) rest.pop_back();
  if (rest.find_first_of("/?#@") != std::string::npos)
    return invalid_argument("{}: '{}' must be http://host:port (no path, query or user)", field,
                            text);
  BackendUrl url;
  std::string port_text;
  if (rest.starts_with("[")) {  // [v6]:port
    const size_t close = rest.find(']');
    if (close == std::string::npos)
      return invalid_argument("{}: '{}' has an unclosed '['", field, text);
    url.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return invalid_argument("{}: '{}' is malformed", field, text);
      port_text = rest.substr(close + 2);
    }
  } else {
    const size_t colon = rest.rfind(':');
    url.host = rest.substr(0, colon);
    if (colon != std::string::npos) port_text = rest.substr(colon + 1);
    if (colon != std::string::npos && port_text.empty())
      return invalid_argument("{}: '{}' has an empty port", field, text);
  }
  if (url.host.empty()) return invalid_argument("{}: '{}' has no host", field, text);
  for (char c : url.host) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' ||
          c == ':'))
      return invalid_argument("{}: '{}': host '{}' has a character '{}' no host name has", field,
                              text, url.host, c);
  }
  if (!port_text.empty()) {
    if (port_text.size() > 5 || port_text.find_first_not_of("0123456789") != std::string::npos)
      return invalid_argument("{}: '{}': port '{}' is not a number", field, text, port_text);
    url.port = std::stoi(port_text);
  }
  if (url.port < 1 || url.port > 65535)
    return invalid_argument("{}: '{}': port {} is not 1..65535", field, text, url.port);
  if (url.host == "0.0.0.0" || url.host == "::")
    return invalid_argument("{}: '{}': {} is a listen address, not one to connect to", field, text,
                            url.host);
  // A name that does not resolve cannot be reached, ever: that is a configuration mistake. A
  // backend that resolves but does not answer yet is not (it is health-checked until it does).
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(url.host.c_str(), nullptr, &hints, &found);
  if (rc != 0)
    return invalid_argument("{}: '{}': host '{}' does not resolve ({})", field, text, url.host,
                            gai_strerror(rc));
  freeaddrinfo(found);
  const bool v6 = url.host.find(':') != std::string::npos;
  url.text = fmt::format("http://{}{}{}:{}", v6 ? "[" : "", url.host, v6 ? "]" : "", url.port);
  return url;
}

}  // namespace seekserve
