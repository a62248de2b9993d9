#include "core/io/archive.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <set>
#include <string_view>
#include <utility>

#include "core/util/error.h"
#include "core/util/json_limits.h"

namespace automod {
namespace fs = std::filesystem;
namespace {

constexpr char kMagic[8] = {'A', 'M', 'O', 'D', 'F', 'I', 'L', 'E'};
constexpr char kEndMagic[8] = {'A', 'M', 'O', 'D', 'E', 'N', 'D', '!'};
constexpr size_t kPrefixSize = 8 + 4 + 8;
constexpr size_t kTrailerSize = 8 + 8 + 4;

uint64_t alignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

std::string dtypeName(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return "f32";
    case torch::kFloat64: return "f64";
    case torch::kFloat16: return "f16";
    case torch::kInt64: return "i64";
    case torch::kInt32: return "i32";
    case torch::kUInt8: return "u8";
    case torch::kBool: return "bool";
    default: throw Error(std::string("cannot store tensors of type ") + c10::toString(t));
  }
}

torch::ScalarType dtypeFromName(const std::string& n) {
  if (n == "f32") return torch::kFloat32;
  if (n == "f64") return torch::kFloat64;
  if (n == "f16") return torch::kFloat16;
  if (n == "i64") return torch::kInt64;
  if (n == "i32") return torch::kInt32;
  if (n == "u8") return torch::kUInt8;
  if (n == "bool") return torch::kBool;
  throw Error("unknown tensor type '" + n + "' (the file was written by a newer program, or is damaged)");
}

/// The checksum a format version uses.
uint32_t checksum(uint32_t version, const void* data, size_t size, uint32_t crc = 0) {
  return version >= 2 ? crc32c(data, size, crc) : crc32(data, size, crc);
}

class CrcWriter {
 public:
  explicit CrcWriter(int fd, const fs::path& path) : fd_(fd), path_(path) {}
  void write(const void* data, size_t n) {
    crc_ = checksum(kArchiveFormatVersion, data, n, crc_);
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        throw Error("cannot write " + path_.string() + ": " + std::strerror(errno));
      }
      p += w;
      n -= static_cast<size_t>(w);
      written_ += static_cast<uint64_t>(w);
    }
  }
  template <typename T>
  void writePod(const T& v) { write(&v, sizeof(T)); }
  /// Zero bytes up to the next multiple of kArchiveTensorAlignment from the start of the file.
  void pad() {
    static const char zeros[kArchiveTensorAlignment] = {};
    write(zeros, alignUp(written_, kArchiveTensorAlignment) - written_);
  }
  uint32_t crc() const { return crc_; }
  uint64_t written() const { return written_; }
  void writeRaw(const void* data, size_t n) {  // not checksummed (trailer)
    uint32_t keep = crc_;
    write(data, n);
    crc_ = keep;
  }

 private:
  int fd_;
  fs::path path_;
  uint32_t crc_ = 0;
  uint64_t written_ = 0;
};

/// A file descriptor closed when it goes out of scope.
struct Fd {
  int fd = -1;
  Fd() = default;
  Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Fd& operator=(Fd&&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

/// Opens a regular file for reading; throws automod::Error naming the file otherwise. O_NONBLOCK so
/// that a FIFO given as a model file is refused instead of waiting for a writer.
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

/// Reads exactly `n` bytes at `offset`; throws automod::Error when the file ends before.
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

/// A whole file in memory: a private, writable (copy-on-write) map of it, or, where the file cannot be
/// mapped (an empty file, a file system without mmap), a copy read into a buffer.
class FileBytes {
 public:
  FileBytes(const fs::path& path, const std::string& name) {
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
    } catch (const std::exception& e) {
      throw Error(outOfMemoryMessage(e, "read " + name + " (" + byteCount(size) + ")"), errorDetail(e));
    }
    if (size_ > 0) readAt(f.fd, buffer_.data(), size_, 0, name);
  }
  ~FileBytes() {
    if (map_) ::munmap(map_, size_);
  }
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

/// Where the header text and the tensor data lie: [kPrefixSize, +header_len) and [data_start, +data_size).
struct Layout {
  uint64_t header_len = 0, data_start = 0, data_size = 0;
};

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
    try {
      t.dtype = dtypeFromName(jdtype.get<std::string>());
    } catch (const Error& x) {
      throw Error(where + " has an " + x.what());
    }
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
    const uint64_t elem = c10::elementSize(t.dtype);
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

/// Reads and verifies an archive held in memory. With `owner` (what keeps `data` alive), tensors of a
/// format-2 file that lie aligned in it are views of `data` holding a reference to `owner`; every other
/// tensor is a copy.
TensorArchive decodeArchive(const char* data, size_t size, const std::string& name,
                            const std::shared_ptr<const void>& owner) {
  const char* trailer = size >= kTrailerSize ? data + size - kTrailerSize : data;
  const Frame frame = checkFrame(data, trailer, size, name);
  if (checksum(frame.version, data, size - kTrailerSize) != frame.crc) throw checksumMismatch(name);
  const Layout layout = layoutOf(frame, data, size, name);
  ArchiveHeader index = parseHeader(std::string_view(data + kPrefixSize, layout.header_len), layout.data_size, name);
  TensorArchive archive;
  archive.header = std::move(index.header);
  archive.tensors.reserve(index.tensors.size());
  for (auto& e : index.tensors) {
    const char* src = data + layout.data_start + e.offset;
    torch::Tensor t;
    if (owner && frame.version >= 2 && e.nbytes > 0 && reinterpret_cast<uintptr_t>(src) % kArchiveTensorAlignment == 0) {
      // The deleter keeps the mapping alive as long as the tensor's storage lives.
      t = torch::from_blob(const_cast<char*>(src), e.shape, [owner](void*) {},
                           torch::TensorOptions().dtype(e.dtype));
    } else {
      try {
        t = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype));
      } catch (const std::exception& x) {
        throw Error(outOfMemoryMessage(x, "read " + name + ": tensor '" + e.name + "' needs " + byteCount(e.nbytes)),
                    errorDetail(x));
      }
      if (e.nbytes > 0) std::memcpy(t.data_ptr(), src, e.nbytes);
    }
    archive.tensors.emplace_back(std::move(e.name), std::move(t));
  }
  return archive;
}

}  // namespace

const torch::Tensor& TensorArchive::get(const std::string& name) const {
  for (auto& [n, t] : tensors)
    if (n == name) return t;
  throw Error("the file has no tensor '" + name + "'");
}

bool TensorArchive::has(const std::string& name) const {
  for (auto& [n, t] : tensors)
    if (n == name) return true;
  return false;
}

void writeArchive(const fs::path& path, const TensorArchive& archive) {
  // Index and contiguous CPU copies first, so that nothing is written if a tensor is unusable.
  nlohmann::json index = nlohmann::json::array();
  std::vector<torch::Tensor> blobs;
  uint64_t offset = 0;
  for (auto& [name, t] : archive.tensors) {
    TORCH_CHECK(t.defined(), "cannot save undefined tensor ", name);
    auto c = t.detach().to(torch::kCPU).contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(c.numel()) * c.element_size();
    offset = alignUp(offset, kArchiveTensorAlignment);
    index.push_back({{"name", name}, {"dtype", dtypeName(c.scalar_type())}, {"shape", c.sizes().vec()},
                     {"offset", offset}, {"nbytes", nbytes}});
    offset += nbytes;
    blobs.push_back(std::move(c));
  }
  nlohmann::json header = archive.header;
  header["tensors"] = index;
  const std::string text = header.dump();

  fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::string tmpl = (dir / ("." + path.filename().string() + ".tmpXXXXXX")).string();
  std::vector<char> tmpname(tmpl.begin(), tmpl.end());
  tmpname.push_back('\0');
  int fd = ::mkstemp(tmpname.data());
  if (fd < 0) throw Error("cannot write " + path.string() + ": " + std::strerror(errno));
  fs::path tmp(tmpname.data());
  try {
    CrcWriter out(fd, path);
    out.write(kMagic, sizeof kMagic);
    out.writePod(kArchiveFormatVersion);
    out.writePod(static_cast<uint64_t>(text.size()));
    out.write(text.data(), text.size());
    // The data, and every tensor in it, at a multiple of the alignment from the start of the file.
    out.pad();
    for (auto& b : blobs) {
      out.pad();
      out.write(b.data_ptr(), static_cast<size_t>(b.numel()) * b.element_size());
    }
    const uint64_t total = out.written() + kTrailerSize;
    const uint32_t crc = out.crc();
    out.writeRaw(kEndMagic, sizeof kEndMagic);
    out.writeRaw(&total, sizeof total);
    out.writeRaw(&crc, sizeof crc);
    if (::fsync(fd) != 0) throw Error("cannot write " + path.string() + ": " + std::strerror(errno));
    if (::close(fd) != 0) {
      fd = -1;
      throw Error("cannot write " + path.string() + ": " + std::strerror(errno));
    }
    fd = -1;
    fs::rename(tmp, path);
    // Make the rename itself durable.
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  } catch (const std::exception& e) {
    if (fd >= 0) ::close(fd);
    fs::remove(tmp, ec);
    if (dynamic_cast<const Error*>(&e)) throw;
    throw Error("cannot write " + path.string() + ": " + e.what());
  }
}

TensorArchive readArchive(const fs::path& path, TensorStorage storage) {
  const std::string name = path.string();
  auto bytes = std::make_shared<FileBytes>(path, name);
  // Tensors that are views keep `bytes` (the mapping) alive; when there are none it goes with this scope.
  std::shared_ptr<const void> owner;
  if (storage == TensorStorage::Mapped && bytes->mapped()) owner = bytes;
  return decodeArchive(bytes->data(), bytes->size(), name, owner);
}

TensorArchive readArchiveBytes(const char* data, size_t size, const std::string& name) {
  return decodeArchive(data, size, name, nullptr);
}

ArchiveHeader readArchiveHeader(const fs::path& path) {
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
