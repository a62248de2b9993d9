#pragma once
// SHA-256 (FIPS 180-4), for the provenance of imported checkpoints and for verifying downloads.
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace automod {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  /// The digest; the object must not be updated afterwards.
  std::array<uint8_t, 32> finish();
  /// Lower-case hex of finish().
  std::string hex();

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t length_ = 0;
};

/// Lower-case hex SHA-256 of a byte string.
std::string sha256Hex(const void* data, size_t size);
/// Lower-case hex SHA-256 of a file, streamed; throws automod::Error when it cannot be read.
std::string sha256File(const std::filesystem::path& path);

}  // namespace automod
