#include "core/util/crc.h"

#include <array>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define AUTOMOD_CRC32C_SSE42 1
#endif

namespace automod {
namespace {

// Slice-by-8: table[0] is the classic byte-at-a-time table; table[k][b] is the CRC of byte b followed by
// k zero bytes, so that eight table look-ups (independent, hence in parallel) advance the CRC by 8 bytes.
using SliceTables = std::array<std::array<uint32_t, 256>, 8>;

SliceTables makeTables(uint32_t poly) {
  SliceTables t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? poly ^ (c >> 1) : c >> 1;
    t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; ++i)
    for (int k = 1; k < 8; ++k) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFFu];
  return t;
}

// `crc` is the running register (already inverted).
uint32_t sliceBy8(const SliceTables& t, const uint8_t* p, size_t n, uint32_t crc) {
  for (; n >= 8; p += 8, n -= 8) {
    // Assembled byte by byte, so that the result does not depend on the machine's endianness (compilers
    // turn this into one load on little-endian machines).
    const uint32_t lo = crc ^ (uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24);
    const uint32_t hi = uint32_t(p[4]) | uint32_t(p[5]) << 8 | uint32_t(p[6]) << 16 | uint32_t(p[7]) << 24;
    crc = t[7][lo & 0xFFu] ^ t[6][(lo >> 8) & 0xFFu] ^ t[5][(lo >> 16) & 0xFFu] ^ t[4][lo >> 24] ^
          t[3][hi & 0xFFu] ^ t[2][(hi >> 8) & 0xFFu] ^ t[1][(hi >> 16) & 0xFFu] ^ t[0][hi >> 24];
  }
  for (; n > 0; ++p, --n) crc = t[0][(crc ^ *p) & 0xFFu] ^ (crc >> 8);
  return crc;
}

const SliceTables& ieeeTables() {
  static const SliceTables t = makeTables(0xEDB88320u);
  return t;
}

const SliceTables& castagnoliTables() {
  static const SliceTables t = makeTables(0x82F63B78u);
  return t;
}

#ifdef AUTOMOD_CRC32C_SSE42
// One crc32 instruction per 8 bytes: its latency (3 cycles) bounds a single stream at ~2.7 bytes per
// cycle, a few times the tables' speed, which is enough for a file read from the page cache.
__attribute__((target("sse4.2"))) uint32_t crc32cSse42(const uint8_t* p, size_t n, uint32_t crc) {
  for (; n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0; ++p, --n) crc = _mm_crc32_u8(crc, *p);
  uint64_t c = crc;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    __builtin_memcpy(&w, p, 8);
    c = _mm_crc32_u64(c, w);
  }
  crc = static_cast<uint32_t>(c);
  for (; n > 0; ++p, --n) crc = _mm_crc32_u8(crc, *p);
  return crc;
}

bool haveSse42() {
  static const bool yes = __builtin_cpu_supports("sse4.2");
  return yes;
}
#endif

}  // namespace

uint32_t crc32(const void* data, size_t size, uint32_t crc) {
  return ~sliceBy8(ieeeTables(), static_cast<const uint8_t*>(data), size, ~crc);
}

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  const auto* p = static_cast<const uint8_t*>(data);
#ifdef AUTOMOD_CRC32C_SSE42
  if (haveSse42()) return ~crc32cSse42(p, size, ~crc);
#endif
  return ~sliceBy8(castagnoliTables(), p, size, ~crc);
}

}  // namespace automod
