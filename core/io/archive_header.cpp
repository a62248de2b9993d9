// The container's framing and header (core/io/archive_format.h, archive_header.h): no LibTorch, so
// that `automod info` reads a model file's header without loading it (app/automod_launcher.cpp).
#include "core/io/archive_header.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <set>
#include <stdexcept>

#include "core/io/archive_format.h"
#include "core/util/crc.h"
#include "core/util/error.h"
#include "core/util/json_limits.h"

namespace automod {
namespace fs = std::filesystem;

size_t archiveElementSize(const std::string& dtype) {
  if (dtype == "f32" || dtype == "i32") return 4;
  if (dtype == "f64" || dtype == "i64") return 8;
  if (dtype == "f16") return 2;
  if (dtype == "u8" || dtype == "bool") return 1;
  return 0;
}

int64_t ArchiveEntry::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

namespace archive_format {

uint32_t checksum(uint32_t version, const void* data, size_t size, uint32_t crc) {
  return version >= 2 ? crc32c(data, size, crc) : crc32(data, size, crc);
}

Fd::~Fd() {
  if (fd >= 0) ::close(fd);
}

Fd openForReading(const fs::path& path, const std::string& name, uint64_t* size) {
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (f.fd < 0) throw Error("cannot open " + name + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) throw Error("cannot open " + name + ": " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw Error("cannot open " + name + ": it is a folder, not a file");
  if (!S_ISREG(st.st_mode)) throw Error("cannot open " + name + ": it is not a regular file");
  *size = static_cast<uint64_t>(st.st_size);
  return f;
}

void readAt(int fd, void* out, size_t n, uint64_t offset, const std::string& name) {
  auto* p = static_cast<char*>(out);
  while (n > 0) {
    const ssize_t r = ::pread(fd, p, n, static_cast<off_t>(offset));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw Error("cannot read " + name + ": " + std::strerror(errno));
    if (r == 0) throw Error(name + " is truncated: it became shorter while it was read");
    p += r, n -= static_cast<size_t>(r), offset += static_cast<uint64_t>(r);
  }
}

FileBytes::FileBytes(const fs::path& path, const std::string& name) {
  uint64_t size = 0;
  Fd f = openForReading(path, name, &size);
  size_ = static_cast<size_t>(size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, f.fd, 0);
    if (p != MAP_FAILED) {
      map_ = p;
#ifdef MADV_POPULATE_READ
      // Fault the whole file in at once (Linux 5.14+; older kernels say EINVAL and the checksum pass
      // faults it page by page). A file that shrank since fstat fails here with EFAULT, as a message,
      // instead of killing the program with SIGBUS in the checksum pass.
      if (::madvise(map_, size_, MADV_POPULATE_READ) != 0 && errno == EFAULT) {
        ::munmap(map_, size_);
        map_ = nullptr;
        throw Error(name + " is truncated: it became shorter while it was read");
      }
#else
      ::madvise(map_, size_, MADV_WILLNEED);
#endif
      return;
    }
  }
  try {
    buffer_.resize(size_);
  } catch (const std::bad_alloc& e) {
    throw Error(outOfMemorySentence("read " + name + " (" + byteCount(size) + ")", 0, false), e.what());
  } catch (const std::length_error& e) {
    throw Error(outOfMemorySentence("read " + name + " (" + byteCount(size) + ")", 0, false), e.what());
  }
  if (size_ > 0) readAt(f.fd, buffer_.data(), size_, 0, name);
}

FileBytes::~FileBytes() {
  if (map_) ::munmap(map_, size_);
}

Frame checkFrame(const char* prefix, const char* trailer, uint64_t size, const std::string& name) {
  if (size < kPrefixSize + kTrailerSize) {
    if (size >= 8 && std::memcmp(prefix, kMagic, 8) == 0)
      throw Error(name + " is truncated (" + std::to_string(size) + " bytes): the copy or download was cut short");
    throw Error(name + " is not an Automodulator Studio model file (.amod)");
  }
  if (std::memcmp(prefix, kMagic, 8) != 0) throw Error(name + " is not an Automodulator Studio model file (.amod)");
  Frame f;
  std::memcpy(&f.version, prefix + 8, 4);
  if (f.version > kArchiveFormatVersion)
    throw Error(name + " was written by a newer Automodulator Studio (file format " + std::to_string(f.version) +
                "; this build reads up to " + std::to_string(kArchiveFormatVersion) + "): update the program");
  if (f.version == 0) throw Error(name + " has an invalid format version 0");
  uint64_t total = 0;
  std::memcpy(&total, trailer + 8, 8);
  std::memcpy(&f.crc, trailer + 16, 4);
  if (std::memcmp(trailer, kEndMagic, 8) != 0 || total != size)
    throw Error(name + " is truncated or damaged (its end marker is missing): the copy or download was cut short");
  return f;
}

Error checksumMismatch(const std::string& name) {
  return Error(name + " is corrupt (checksum mismatch): the file was damaged after it was written");
}

Layout layoutOf(const Frame& f, const char* prefix, uint64_t size, const std::string& name) {
  Layout l;
  std::memcpy(&l.header_len, prefix + 12, 8);
  const uint64_t end = size - kTrailerSize;
  if (l.header_len > end - kPrefixSize) throw Error(name + " is corrupt (header length out of range)");
  l.data_start = kPrefixSize + l.header_len;
  if (f.version >= 2) l.data_start = alignUp(l.data_start, kArchiveTensorAlignment);
  if (l.data_start > end) throw Error(name + " is corrupt (header length out of range)");
  l.data_size = end - l.data_start;
  return l;
}

// From here on the file is as its writer made it (its checksum is right, or, for readArchiveHeader,
// not yet known): what is wrong now was written that way (by another program, or on purpose), so every
// field is checked before it is used.
ArchiveHeader parseHeader(std::string_view text, uint64_t data_size, const std::string& name) {
  ArchiveHeader out;
  out.header = parseJsonLimited(text, "the header of " + name);
  const std::string bad = name + " is corrupt: ";
  if (!out.header.is_object()) throw Error(bad + "its header is not a JSON object");
  auto it = out.header.find("tensors");
  if (it == out.header.end() || !it->is_array()) throw Error(bad + "its header has no list of tensors");
  std::set<std::string> seen;
  for (size_t i = 0; i < it->size(); ++i) {
    const auto& e = (*it)[i];
    const std::string entry = "tensor " + std::to_string(i);
    if (!e.is_object()) throw Error(bad + entry + " in its header is not a JSON object");
    auto field = [&](const char* key) -> const nlohmann::json& {
      auto f = e.find(key);
      if (f == e.end()) throw Error(bad + entry + " in its header has no '" + key + "'");
      return *f;
    };
    const auto& jname = field("name");
    if (!jname.is_string()) throw Error(bad + entry + " in its header has a name that is not a string");
    ArchiveEntry t;
    t.name = jname.get<std::string>();
    const std::string where = bad + "tensor '" + t.name + "'";
    if (!seen.insert(t.name).second)
      throw Error(bad + "it holds two tensors named '" + t.name + "' (the file was not written by this program)");
    const auto& jdtype = field("dtype");
    if (!jdtype.is_string()) throw Error(where + " has a type that is not a string");
    t.dtype = jdtype.get<std::string>();
    if (archiveElementSize(t.dtype) == 0)
      throw Error(where + " has an unknown tensor type '" + t.dtype +
                  "' (the file was written by a newer program, or is damaged)");
    const auto& jshape = field("shape");
    if (!jshape.is_array() || jshape.size() > 16) throw Error(where + " has a shape that is not a list of up to 16 sizes");
    uint64_t numel = 1;
    bool overflow = false;
    for (const auto& d : jshape) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
        throw Error(where + " has a size that is not a whole number >= 0");
      const uint64_t n = d.get<uint64_t>();
      if (n > uint64_t(INT64_MAX)) overflow = true;
      else if (n != 0 && numel > UINT64_MAX / n) overflow = true;
      else numel *= n;
      t.shape.push_back(static_cast<int64_t>(std::min<uint64_t>(n, INT64_MAX)));
    }
    const uint64_t elem = archiveElementSize(t.dtype);
    if (!overflow && numel > UINT64_MAX / elem) overflow = true;
    const auto& joff = field("offset");
    const auto& jnb = field("nbytes");
    if (!joff.is_number_unsigned() || !jnb.is_number_unsigned())
      throw Error(where + " has an offset or byte count that is not a whole number >= 0");
    t.offset = joff.get<uint64_t>(), t.nbytes = jnb.get<uint64_t>();
    if (overflow || numel * elem != t.nbytes)
      throw Error(where + " declares a shape that does not match its byte count (" + byteCount(t.nbytes) + ")");
    if (t.nbytes > data_size || t.offset > data_size - t.nbytes)
      throw Error(where + " does not fit the file (it declares " + byteCount(t.nbytes) + " at offset " +
                  std::to_string(t.offset) + "; the file holds " + byteCount(data_size) + " of tensor data)");
    out.tensors.push_back(std::move(t));
  }
  out.header.erase("tensors");
  return out;
}

}  // namespace archive_format

ArchiveHeader readArchiveHeader(const fs::path& path) {
  using namespace archive_format;
  const std::string name = path.string();
  uint64_t size = 0;
  Fd f = openForReading(path, name, &size);
  char prefix[kPrefixSize] = {}, trailer[kTrailerSize] = {};
  readAt(f.fd, prefix, static_cast<size_t>(std::min<uint64_t>(size, kPrefixSize)), 0, name);
  if (size >= kTrailerSize) readAt(f.fd, trailer, kTrailerSize, size - kTrailerSize, name);
  const Frame frame = checkFrame(prefix, trailer, size, name);
  try {
    const Layout layout = layoutOf(frame, prefix, size, name);
    std::string text(static_cast<size_t>(layout.header_len), '\0');
    readAt(f.fd, text.data(), text.size(), kPrefixSize, name);
    ArchiveHeader out = parseHeader(text, layout.data_size, name);
    out.format_version = frame.version;
    out.file_bytes = size;
    return out;
  } catch (const Error&) {
    // A header that does not parse may be a damaged one: then say that, as readArchive would.
    FileBytes all(path, name);
    if (all.size() == size && checksum(frame.version, all.data(), size - kTrailerSize) != frame.crc)
      throw checksumMismatch(name);
    throw;
  }
}

}  // namespace automod
