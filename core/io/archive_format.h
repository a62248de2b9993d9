#pragma once
// Internal to core/io/archive*.cpp: the container's framing (magic, version, header length, trailer,
// checksum) and file access, shared by the torch-free header reader (archive_header.cpp) and the
// tensor reader and writer (archive.cpp). Layout: "AMODFILE" | u32 format version | u64 header bytes |
// header JSON | tensor data | "AMODEND!" | u64 total bytes | u32 checksum of everything before the trailer.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/io/archive_header.h"
#include "core/util/error.h"

namespace automod::archive_format {

constexpr char kMagic[8] = {'A', 'M', 'O', 'D', 'F', 'I', 'L', 'E'};
constexpr char kEndMagic[8] = {'A', 'M', 'O', 'D', 'E', 'N', 'D', '!'};
constexpr size_t kPrefixSize = 8 + 4 + 8;
constexpr size_t kTrailerSize = 8 + 8 + 4;

inline uint64_t alignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

/// The checksum a format version uses (CRC-32 for format 1, CRC-32C since).
uint32_t checksum(uint32_t version, const void* data, size_t size, uint32_t crc = 0);

/// A file descriptor closed when it goes out of scope.
struct Fd {
  int fd = -1;
  Fd() = default;
  Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Fd& operator=(Fd&&) = delete;
  ~Fd();
};

/// Opens a regular file for reading; throws automod::Error naming the file otherwise. O_NONBLOCK so
/// that a FIFO given as a model file is refused instead of waiting for a writer.
Fd openForReading(const std::filesystem::path& path, const std::string& name, uint64_t* size);
/// Reads exactly `n` bytes at `offset`; throws automod::Error when the file ends before.
void readAt(int fd, void* out, size_t n, uint64_t offset, const std::string& name);

/// A whole file in memory: a private, writable (copy-on-write) map of it, or, where the file cannot be
/// mapped (an empty file, a file system without mmap), a copy read into a buffer.
class FileBytes {
 public:
  FileBytes(const std::filesystem::path& path, const std::string& name);
  ~FileBytes();
  FileBytes(const FileBytes&) = delete;
  FileBytes& operator=(const FileBytes&) = delete;

  const char* data() const { return map_ ? static_cast<const char*>(map_) : buffer_.data(); }
  size_t size() const { return size_; }
  bool mapped() const { return map_ != nullptr; }

 private:
  void* map_ = nullptr;
  size_t size_ = 0;
  std::vector<char> buffer_;
};

/// What the first and last bytes of an archive say, checked against the file's size.
struct Frame {
  uint32_t version = 0;
  uint32_t crc = 0;  ///< the stored checksum
};
/// `prefix` holds the first min(size, kPrefixSize) bytes, `trailer` the last kTrailerSize (when the
/// file has that many).
Frame checkFrame(const char* prefix, const char* trailer, uint64_t size, const std::string& name);
Error checksumMismatch(const std::string& name);

/// Where the header text and the tensor data lie: [kPrefixSize, +header_len) and [data_start, +data_size).
struct Layout {
  uint64_t header_len = 0, data_start = 0, data_size = 0;
};
Layout layoutOf(const Frame& f, const char* prefix, uint64_t size, const std::string& name);

/// The header JSON and its tensor table, every field checked (types, sizes against the data).
ArchiveHeader parseHeader(std::string_view text, uint64_t data_size, const std::string& name);

}  // namespace automod::archive_format
