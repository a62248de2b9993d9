#include "core/io/archive.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <set>
#include <string_view>
#include <utility>

#include "core/io/archive_format.h"
#include "core/util/error.h"
#include "core/util/json_limits.h"

namespace automod {
namespace fs = std::filesystem;
using namespace archive_format;

std::string archiveDtypeName(torch::ScalarType t) {
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

torch::ScalarType archiveScalarType(const std::string& n) {
  if (n == "f32") return torch::kFloat32;
  if (n == "f64") return torch::kFloat64;
  if (n == "f16") return torch::kFloat16;
  if (n == "i64") return torch::kInt64;
  if (n == "i32") return torch::kInt32;
  if (n == "u8") return torch::kUInt8;
  if (n == "bool") return torch::kBool;
  throw Error("unknown tensor type '" + n + "' (the file was written by a newer program, or is damaged)");
}

namespace {

class CrcWriter {
 public:
  explicit CrcWriter(int fd, const fs::path& path) : fd_(fd), path_(path) {}
  /// Checksums and writes in chunks small enough to stay in cache between the two (one pass over
  /// memory, not two), and asks the kernel to start writing each kWriteback bytes back to disk at once,
  /// so that the disk works while the rest is written and the final fsync waits only for the tail.
  void write(const void* data, size_t n) {
    constexpr size_t kChunk = size_t(1) << 20;
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const size_t chunk = std::min(n, kChunk);
      crc_ = checksum(kArchiveFormatVersion, p, chunk, crc_);
      writeAll(p, chunk);
      p += chunk;
      n -= chunk;
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
  void writeRaw(const void* data, size_t n) { writeAll(static_cast<const char*>(data), n); }  // not checksummed (trailer)

 private:
  static constexpr uint64_t kWriteback = uint64_t(32) << 20;
  void writeAll(const char* p, size_t n) {
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
#ifdef __linux__
    if (written_ - flushed_ >= kWriteback) {
      // Only a hint: the fsync at the end is what makes the file durable, so a failure here is ignored.
      (void)::sync_file_range(fd_, static_cast<off_t>(flushed_), static_cast<off_t>(written_ - flushed_),
                              SYNC_FILE_RANGE_WRITE);
      flushed_ = written_;
    }
#endif
  }
  int fd_;
  fs::path path_;
  uint32_t crc_ = 0;
  uint64_t written_ = 0, flushed_ = 0;
};

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
                           torch::TensorOptions().dtype(archiveScalarType(e.dtype)));
    } else {
      try {
        t = torch::empty(e.shape, torch::TensorOptions().dtype(archiveScalarType(e.dtype)));
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
    index.push_back({{"name", name}, {"dtype", archiveDtypeName(c.scalar_type())}, {"shape", c.sizes().vec()},
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

}  // namespace automod
