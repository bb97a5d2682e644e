#include "tools/npy.h"

#include <cstring>

#include <fmt/format.h>

#include "core/mapped_file.h"

namespace seekserve {

Status write_npy_f32(const std::string& path, std::span<const float> data,
                     const std::vector<int64_t>& shape) {
  std::string dims;
  int64_t n = 1;
  for (int64_t d : shape) {
    dims += fmt::format("{}, ", d);
    n *= d;
  }
  if (shape.size() > 1) dims.resize(dims.size() - 1);  // "(3, 4)" but "(3,)"
  if (n != static_cast<int64_t>(data.size())) {
    return internal_error("npy: shape holds {} values, data {}", n, data.size());
  }
  std::string header =
      fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}", dims);
  // Magic (6) + version (2) + header length (2) + header + newline, padded to 64 bytes.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::vector<uint8_t> out;
  out.reserve(10 + header.size() + data.size_bytes());
  const uint8_t magic[] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  out.insert(out.end(), magic, magic + 8);
  out.push_back(static_cast<uint8_t>(header.size() & 0xff));
  out.push_back(static_cast<uint8_t>(header.size() >> 8));
  out.insert(out.end(), header.begin(), header.end());
  const auto* bytes = reinterpret_cast<const uint8_t*>(data.data());
  out.insert(out.end(), bytes, bytes + data.size_bytes());
  return write_file_atomic(path, out);
}

}  // namespace seekserve
