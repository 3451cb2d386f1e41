// What the fuzz targets share: CHECK, which aborts (libFuzzer then saves the
// input) with the failed condition, and the bytes of strings and u32 headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include "engine/framing.hpp"

#define CHECK(condition)                                                                 \
  do {                                                                                   \
    if (!(condition)) {                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

namespace mqfs::fuzz {

inline std::span<const std::byte> bytes_of(const std::string& text) { return std::as_bytes(std::span(text)); }

// The u32 header of a frame of `size` bytes (engine::put_frame_header).
inline std::string frame_header(std::size_t size) {
  std::string header(engine::kFrameHeader, '\0');
  engine::put_frame_header(reinterpret_cast<std::byte*>(header.data()), static_cast<uint32_t>(size));
  return header;
}

// The length a u32 header announces, read apart from the engine: the first
// four bytes of `bytes`, little-endian.
inline uint32_t frame_length(const std::string& bytes) {
  uint32_t length = 0;
  for (std::size_t i = 0; i < engine::kFrameHeader; ++i)
    length |= uint32_t{static_cast<uint8_t>(bytes.at(i))} << (8 * i);
  return length;
}

}  // namespace mqfs::fuzz
