#pragma once
// Cyclic redundancy checks of byte ranges: CRC-32 (IEEE 802.3, the zip and PNG one) and CRC-32C
// (Castagnoli, the one x86's SSE4.2 computes in hardware). Both continue from a previous value, so a
// file can be checked in one streaming pass: crc = crc32c(chunk, n, crc) chunk after chunk.
#include <cstddef>
#include <cstdint>

namespace automod {

/// CRC-32 (IEEE, reflected polynomial 0xEDB88320) of a byte range, continuing from `crc` (0 to start).
/// With PCLMULQDQ (checked at run time) by carry-less multiplication, about 10 bytes per cycle;
/// elsewhere table-driven, eight bytes per step (slice-by-8): about 1 byte per cycle.
uint32_t crc32(const void* data, size_t size, uint32_t crc = 0);

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) of a byte range, continuing from `crc`.
/// With SSE4.2 (checked at run time) the CPU's crc32 instruction, several bytes per cycle; elsewhere
/// the same slice-by-8 tables as crc32().
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);

}  // namespace automod
