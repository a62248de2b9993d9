#pragma once
// A minimal read-only ZIP reader over bytes already in memory, for the archives `torch.save` writes
// (PyTorch >= 1.6): every entry stored (method 0), ZIP64 records present. Only what such files need:
// the end-of-central-directory record (and its ZIP64 twin), the central directory and local headers.
// Every offset and size is checked against the buffer and each entry's CRC-32 is verified when it is
// read, so a truncated or corrupt file throws automod::Error instead of reading out of bounds.
#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace automod {

class ZipReader {
 public:
  /// Parses the central directory of the archive in `bytes` (which must outlive the reader).
  /// `source` names the file in error messages. Throws automod::Error for a truncated or corrupt
  /// archive, a multi-disk or encrypted one, or duplicate entry names.
  explicit ZipReader(std::span<const uint8_t> bytes, std::string source = "zip archive");

  /// Entry names in central-directory order.
  std::vector<std::string> names() const;
  bool has(const std::string& name) const;
  /// Size in bytes of entry `name` as recorded in the central directory (not read, not verified).
  uint64_t size(const std::string& name) const;
  /// The bytes of entry `name`, a view into the buffer given to the constructor, CRC-checked.
  /// Throws automod::Error for a missing or compressed entry ("only stored entries are supported"),
  /// a local header that does not match the central directory, data past the end or a CRC mismatch.
  std::span<const uint8_t> entry(const std::string& name) const;

  /// Where entry `name`'s bytes lie in the buffer, checked as entry() checks them except for the
  /// CRC-32, which the caller verifies once it reads the bytes itself (a streamed read).
  struct Location {
    uint64_t offset = 0;  ///< of the first data byte, from the start of the buffer
    uint64_t size = 0;
    uint32_t crc = 0;  ///< CRC-32 recorded in the central directory
  };
  Location locate(const std::string& name) const;

 private:
  struct Entry {
    std::string name;
    uint64_t local_offset = 0;
    uint64_t compressed_size = 0;
    uint64_t size = 0;
    uint32_t crc = 0;
    uint16_t method = 0;
    uint16_t flags = 0;
  };
  const Entry& find(const std::string& name) const;
  void readCentralDirectory(uint64_t offset, uint64_t size, uint64_t count);

  std::span<const uint8_t> bytes_;
  std::string source_;
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace automod
