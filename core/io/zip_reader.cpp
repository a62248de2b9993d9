#include "core/io/zip_reader.h"

#include <algorithm>
#include <utility>

#include "core/util/error.h"

namespace automod {

// From core/io/archive.h, declared here so that the zip reader does not pull in LibTorch's headers.
uint32_t crc32(const void* data, size_t size, uint32_t crc);

namespace {

constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr uint32_t kCentralHeaderSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr size_t kEndSize = 22;
constexpr size_t kZip64EndSize = 56;
constexpr size_t kZip64LocatorSize = 20;
constexpr size_t kCentralHeaderSize = 46;
constexpr size_t kLocalHeaderSize = 30;
constexpr size_t kMaxCommentSize = 0xFFFF;

uint16_t u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t u64(const uint8_t* p) { return static_cast<uint64_t>(u32(p)) | (static_cast<uint64_t>(u32(p + 4)) << 32); }

std::string methodName(uint16_t method) {
  switch (method) {
    case 8: return "deflate";
    case 9: return "deflate64";
    case 12: return "bzip2";
    case 14: return "lzma";
    case 93: return "zstd";
    case 95: return "xz";
    default: return "method " + std::to_string(method);
  }
}

/// An entry name fit for a one-line message (names come from the file): bytes outside printable
/// ASCII escaped as \xNN (torch.save names are ASCII).
std::string shown(const std::string& name) {
  std::string out;
  for (unsigned char c : name.substr(0, 200)) {
    if (c < 0x20 || c >= 0x7f) {
      static const char* hex = "0123456789abcdef";
      out += std::string("\\x") + hex[c >> 4] + hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return name.size() > 200 ? out + "…" : out;
}

}  // namespace

ZipReader::ZipReader(std::span<const uint8_t> bytes, std::string source)
    : bytes_(bytes), source_(std::move(source)) {
  const uint8_t* b = bytes_.data();
  const size_t n = bytes_.size();
  const std::string notZip = source_ + ": truncated or not a zip archive: no end-of-central-directory record";
  if (n < kEndSize) throw Error(notZip);

  // The end record is the last thing in the file, followed only by its comment.
  size_t end = n;  // sentinel: not found
  const size_t lowest = n - kEndSize > kMaxCommentSize ? n - kEndSize - kMaxCommentSize : 0;
  for (size_t pos = n - kEndSize + 1; pos-- > lowest;) {
    if (u32(b + pos) == kEndSig && pos + kEndSize + u16(b + pos + 20) <= n) {
      end = pos;
      break;
    }
  }
  if (end == n) throw Error(notZip);

  uint64_t diskNumber = u16(b + end + 4), cdDisk = u16(b + end + 6);
  uint64_t diskEntries = u16(b + end + 8), count = u16(b + end + 10);
  uint64_t cdSize = u32(b + end + 12), cdOffset = u32(b + end + 16);

  // ZIP64: a locator just before the end record points at the ZIP64 end record with 64-bit fields.
  if (end >= kZip64LocatorSize && u32(b + end - kZip64LocatorSize) == kZip64LocatorSig) {
    const uint8_t* loc = b + end - kZip64LocatorSize;
    const uint64_t z64 = u64(loc + 8);
    if (u32(loc + 4) != 0 || u32(loc + 16) > 1)
      throw Error(source_ + ": multi-disk zip archives are not supported");
    if (z64 > end - kZip64LocatorSize || end - kZip64LocatorSize - z64 < kZip64EndSize ||
        u32(b + z64) != kZip64EndSig)
      throw Error(source_ + ": corrupt zip archive: the ZIP64 end record is missing or out of bounds");
    diskNumber = u32(b + z64 + 16);
    cdDisk = u32(b + z64 + 20);
    diskEntries = u64(b + z64 + 24);
    count = u64(b + z64 + 32);
    cdSize = u64(b + z64 + 40);
    cdOffset = u64(b + z64 + 48);
  } else if (count == 0xFFFF || cdSize == 0xFFFFFFFF || cdOffset == 0xFFFFFFFF) {
    throw Error(source_ + ": corrupt zip archive: ZIP64 sizes without a ZIP64 end record");
  }
  if (diskNumber != 0 || cdDisk != 0 || diskEntries != count)
    throw Error(source_ + ": multi-disk zip archives are not supported");
  if (cdOffset > n || cdSize > n - cdOffset)
    throw Error(source_ + ": truncated or corrupt zip archive: the central directory (" + std::to_string(cdSize) +
                " bytes at byte " + std::to_string(cdOffset) + ") lies past the end of the file (" +
                std::to_string(n) + " bytes)");
  if (count > cdSize / kCentralHeaderSize)
    throw Error(source_ + ": corrupt zip archive: " + std::to_string(count) + " entries cannot fit in a " +
                std::to_string(cdSize) + "-byte central directory");
  readCentralDirectory(cdOffset, cdSize, count);
}

void ZipReader::readCentralDirectory(uint64_t offset, uint64_t size, uint64_t count) {
  const uint8_t* b = bytes_.data();
  const uint64_t cdEnd = offset + size;
  entries_.reserve(count);
  uint64_t pos = offset;
  for (uint64_t i = 0; i < count; ++i) {
    const auto corrupt = [&](const std::string& what) {
      return Error(source_ + ": corrupt zip archive: central directory entry " + std::to_string(i) + " at byte " +
                   std::to_string(pos) + " " + what);
    };
    if (cdEnd - pos < kCentralHeaderSize) throw corrupt("runs past the end of the central directory");
    const uint8_t* h = b + pos;
    if (u32(h) != kCentralHeaderSig) throw corrupt("has a bad signature");
    Entry e;
    e.flags = u16(h + 8);
    e.method = u16(h + 10);
    e.crc = u32(h + 16);
    e.compressed_size = u32(h + 20);
    e.size = u32(h + 24);
    const size_t nameLen = u16(h + 28), extraLen = u16(h + 30), commentLen = u16(h + 32);
    uint64_t disk = u16(h + 34);
    e.local_offset = u32(h + 42);
    if (cdEnd - pos - kCentralHeaderSize < nameLen + extraLen + commentLen)
      throw corrupt("runs past the end of the central directory");
    e.name.assign(reinterpret_cast<const char*>(h + kCentralHeaderSize), nameLen);

    // ZIP64 extended information: 64-bit values for the fields saturated above, in this order.
    const uint8_t* x = h + kCentralHeaderSize + nameLen;
    const uint8_t* xEnd = x + extraLen;
    bool needSize = e.size == 0xFFFFFFFF, needCompressed = e.compressed_size == 0xFFFFFFFF;
    bool needOffset = e.local_offset == 0xFFFFFFFF, needDisk = disk == 0xFFFF;
    while (xEnd - x >= 4) {
      const uint16_t id = u16(x), len = u16(x + 2);
      if (static_cast<size_t>(xEnd - x - 4) < len) throw corrupt("has an extra field past its end");
      if (id == 0x0001) {
        const uint8_t* f = x + 4;
        const uint8_t* fEnd = f + len;
        const auto take64 = [&](bool& need, uint64_t& v) {
          if (!need || fEnd - f < 8) return;
          v = u64(f);
          f += 8;
          need = false;
        };
        take64(needSize, e.size);
        take64(needCompressed, e.compressed_size);
        take64(needOffset, e.local_offset);
        if (needDisk && fEnd - f >= 4) {
          disk = u32(f);
          needDisk = false;
        }
      }
      x += 4 + len;
    }
    if (needSize || needCompressed || needOffset || needDisk) throw corrupt("lacks its ZIP64 sizes");
    if (disk != 0) throw Error(source_ + ": multi-disk zip archives are not supported");
    if (!index_.emplace(e.name, entries_.size()).second)
      throw Error(source_ + ": corrupt zip archive: entry '" + shown(e.name) + "' appears twice");
    entries_.push_back(std::move(e));
    pos += kCentralHeaderSize + nameLen + extraLen + commentLen;
  }
}

std::vector<std::string> ZipReader::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& e : entries_) out.push_back(e.name);
  return out;
}

bool ZipReader::has(const std::string& name) const { return index_.count(name) != 0; }

const ZipReader::Entry& ZipReader::find(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw Error(source_ + ": the zip archive has no entry '" + shown(name) + "'");
  return entries_[it->second];
}

uint64_t ZipReader::size(const std::string& name) const { return find(name).size; }

std::span<const uint8_t> ZipReader::entry(const std::string& name) const {
  const Location at = locate(name);
  std::span<const uint8_t> data(bytes_.data() + at.offset, static_cast<size_t>(at.size));
  if (crc32(data.data(), data.size(), 0) != at.crc)
    throw Error(source_ + ": entry '" + shown(name) + "' is corrupt: CRC-32 mismatch");
  return data;
}

ZipReader::Location ZipReader::locate(const std::string& name) const {
  const Entry& e = find(name);
  const std::string what = source_ + ": entry '" + shown(name) + "'";
  if (e.flags & 1) throw Error(what + " is encrypted; encrypted zip archives are not supported");
  if (e.method != 0)
    throw Error(what + " is compressed (" + methodName(e.method) +
                "); only stored (uncompressed) entries are supported, as torch.save writes them");
  if (e.compressed_size != e.size)
    throw Error(source_ + ": corrupt zip archive: stored entry '" + shown(name) + "' has different sizes (" +
                std::to_string(e.compressed_size) + " and " + std::to_string(e.size) + ")");
  const uint8_t* b = bytes_.data();
  const uint64_t n = bytes_.size();
  if (e.local_offset > n || n - e.local_offset < kLocalHeaderSize)
    throw Error(what + ": its local header at byte " + std::to_string(e.local_offset) +
                " lies past the end of the file (truncated?)");
  const uint8_t* h = b + e.local_offset;
  if (u32(h) != kLocalHeaderSig)
    throw Error(source_ + ": corrupt zip archive: no local header at byte " + std::to_string(e.local_offset) +
                " for entry '" + shown(name) + "'");
  const uint64_t nameLen = u16(h + 26), extraLen = u16(h + 28);
  const uint64_t start = e.local_offset + kLocalHeaderSize + nameLen + extraLen;
  if (start > n || n - start < e.size)
    throw Error(what + ": its " + std::to_string(e.size) + " bytes at byte " + std::to_string(start) +
                " run past the end of the file (" + std::to_string(n) + " bytes; truncated?)");
  if (nameLen != e.name.size() || !std::equal(e.name.begin(), e.name.end(), h + kLocalHeaderSize))
    throw Error(source_ + ": corrupt zip archive: the local header of entry '" + shown(name) +
                "' names a different entry");
  return {start, e.size, e.crc};
}

}  // namespace automod
