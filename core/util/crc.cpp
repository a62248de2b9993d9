#include "core/util/crc.h"

#include <array>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#include <smmintrin.h>
#include <wmmintrin.h>
#define AUTOMOD_CRC32C_SSE42 1
#define AUTOMOD_CRC32_PCLMUL 1
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

#ifdef AUTOMOD_CRC32_PCLMUL
// CRC-32 by carry-less multiplication ("Fast CRC Computation for Generic Polynomials Using PCLMULQDQ
// Instruction", Intel, 2009; the constants of the reflected IEEE polynomial as Linux's
// crc32-pclmul_asm.S has them). Four 128-bit lanes fold 64 bytes per step, independently, so the
// multiplier's latency is hidden: ~10 bytes per cycle against slice-by-8's one. The lanes are folded
// into one, then to 64 and 32 bits, and a Barrett reduction gives the remainder.
__attribute__((target("pclmul,sse4.1"))) inline __m128i load(const uint8_t* q) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
}
// 128 bits folded onto the next 128: the low half times one constant, the high half times the other.
__attribute__((target("pclmul,sse4.1"))) inline __m128i fold(__m128i x, __m128i k, __m128i next) {
  return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11)), next);
}

// `n` >= 64 and a multiple of 16; `crc` is the running register (already inverted).
__attribute__((target("pclmul,sse4.1"))) uint32_t crc32Pclmul(const uint8_t* p, size_t n, uint32_t crc) {
  const __m128i k1k2 = _mm_set_epi64x(0x1c6e41596, 0x154442bd4);  // x^(4*128+32), x^(4*128-32) mod P
  const __m128i k3k4 = _mm_set_epi64x(0x0ccaa009e, 0x1751997d0);  // x^(128+32), x^(128-32) mod P
  const __m128i k5 = _mm_set_epi64x(0, 0x163cd6124);               // x^64 mod P
  const __m128i poly_mu = _mm_set_epi64x(0x1f7011641, 0x1db710641);  // mu' (Barrett), P'
  const __m128i mask32 = _mm_set_epi32(0, 0, 0, -1);
  __m128i x1 = _mm_xor_si128(load(p), _mm_cvtsi32_si128(static_cast<int>(crc)));
  __m128i x2 = load(p + 16), x3 = load(p + 32), x4 = load(p + 48);
  for (p += 64, n -= 64; n >= 64; p += 64, n -= 64) {
    x1 = fold(x1, k1k2, load(p));
    x2 = fold(x2, k1k2, load(p + 16));
    x3 = fold(x3, k1k2, load(p + 32));
    x4 = fold(x4, k1k2, load(p + 48));
  }
  x1 = fold(x1, k3k4, x2);
  x1 = fold(x1, k3k4, x3);
  x1 = fold(x1, k3k4, x4);
  for (; n >= 16; p += 16, n -= 16) x1 = fold(x1, k3k4, load(p));
  // 128 -> 64 bits (appending 32 zero bits), then 64 -> 32 + 32.
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), _mm_clmulepi64_si128(k3k4, x1, 0x01));
  __m128i high = _mm_srli_si128(x1, 4);
  x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, mask32), k5, 0x00), high);
  // Barrett reduction of 64 bits to the 32-bit remainder.
  __m128i t = _mm_and_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, mask32), poly_mu, 0x10), mask32);
  t = _mm_xor_si128(_mm_clmulepi64_si128(t, poly_mu, 0x00), x1);
  return static_cast<uint32_t>(_mm_extract_epi32(t, 1));
}

bool havePclmul() {
  static const bool yes = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
  return yes;
}
#endif

}  // namespace

uint32_t crc32(const void* data, size_t size, uint32_t crc) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = ~crc;
#ifdef AUTOMOD_CRC32_PCLMUL
  if (size >= 64 && havePclmul()) {
    const size_t folded = size & ~size_t{15};
    c = crc32Pclmul(p, folded, c);
    p += folded;
    size -= folded;
  }
#endif
  return ~sliceBy8(ieeeTables(), p, size, c);
}

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  const auto* p = static_cast<const uint8_t*>(data);
#ifdef AUTOMOD_CRC32C_SSE42
  if (haveSse42()) return ~crc32cSse42(p, size, ~crc);
#endif
  return ~sliceBy8(castagnoliTables(), p, size, ~crc);
}

}  // namespace automod
