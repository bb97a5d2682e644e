#pragma once
// SEEK_CHECK: an invariant that must hold in every build. On failure it prints what was
// expected, where, and aborts. Use it for bugs, never for bad input (return a Status instead).

#include <cstdio>
#include <cstdlib>

#define SEEK_CHECK(cond, msg)                                                                 \
  do {                                                                                        \
    if (!(cond)) [[unlikely]] {                                                               \
      std::fprintf(stderr, "%s:%d: check failed: %s (%s)\n", __FILE__, __LINE__, #cond, msg); \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)
