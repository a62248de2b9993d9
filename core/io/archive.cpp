#include "core/io/archive.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <string_view>

#include "core/util/error.h"
#include "core/util/json_limits.h"

namespace automod {
namespace fs = std::filesystem;
namespace {

constexpr char kMagic[8] = {'A', 'M', 'O', 'D', 'F', 'I', 'L', 'E'};
constexpr char kEndMagic[8] = {'A', 'M', 'O', 'D', 'E', 'N', 'D', '!'};
constexpr size_t kTrailerSize = 8 + 8 + 4;

const std::array<uint32_t, 256>& crcTable() {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

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

class CrcWriter {
 public:
  explicit CrcWriter(int fd, const fs::path& path) : fd_(fd), path_(path) {}
  void write(const void* data, size_t n) {
    crc_ = crc32(data, n, crc_);
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

}  // namespace

uint32_t crc32(const void* data, size_t size, uint32_t crc) {
  const auto& t = crcTable();
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = t[(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

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
    for (auto& b : blobs) out.write(b.data_ptr(), static_cast<size_t>(b.numel()) * b.element_size());
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

TensorArchive readArchive(const fs::path& path) {
  const std::string name = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + name + ": " + std::strerror(errno));
  in.seekg(0, std::ios::end);
  const auto size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  std::vector<char> bytes;
  try {
    bytes.resize(size);
  } catch (const std::exception& e) {
    throw Error(outOfMemoryMessage(e, "read " + name + " (" + byteCount(size) + ")"), errorDetail(e));
  }
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  if (!in) throw Error("cannot read " + name);
  return readArchiveBytes(bytes.data(), bytes.size(), name);
}

TensorArchive readArchiveBytes(const char* data, size_t size, const std::string& name) {
  if (size < sizeof kMagic + 4 + 8 + kTrailerSize) {
    if (size >= 8 && std::memcmp(data, kMagic, 8) == 0)
      throw Error(name + " is truncated (" + std::to_string(size) + " bytes): the copy or download was cut short");
    throw Error(name + " is not an Automodulator Studio model file (.amod)");
  }
  if (std::memcmp(data, kMagic, 8) != 0) throw Error(name + " is not an Automodulator Studio model file (.amod)");
  uint32_t version;
  std::memcpy(&version, data + 8, 4);
  if (version > kArchiveFormatVersion)
    throw Error(name + " was written by a newer Automodulator Studio (file format " + std::to_string(version) +
                "; this build reads up to " + std::to_string(kArchiveFormatVersion) + "): update the program");
  if (version == 0) throw Error(name + " has an invalid format version 0");
  const char* trailer = data + size - kTrailerSize;
  uint64_t total = 0;
  uint32_t crc_stored = 0;
  std::memcpy(&total, trailer + 8, 8);
  std::memcpy(&crc_stored, trailer + 16, 4);
  if (std::memcmp(trailer, kEndMagic, 8) != 0 || total != size)
    throw Error(name + " is truncated or damaged (its end marker is missing): the copy or download was cut short");
  if (crc32(data, size - kTrailerSize) != crc_stored)
    throw Error(name + " is corrupt (checksum mismatch): the file was damaged after it was written");

  // From here on the file is as its writer made it: what is wrong now was written that way (by another
  // program, or on purpose), so every field is checked before it is used.
  uint64_t header_len;
  std::memcpy(&header_len, data + 12, 8);
  const uint64_t body = size - kTrailerSize - 20;
  if (header_len > body) throw Error(name + " is corrupt (header length out of range)");
  const uint64_t data_start = 20 + header_len, data_size = body - header_len;
  TensorArchive archive;
  archive.header = parseJsonLimited(std::string_view(data + 20, header_len), "the header of " + name);
  const std::string bad = name + " is corrupt: ";
  if (!archive.header.is_object()) throw Error(bad + "its header is not a JSON object");
  auto it = archive.header.find("tensors");
  if (it == archive.header.end() || !it->is_array()) throw Error(bad + "its header has no list of tensors");
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
    const std::string tname = jname.get<std::string>();
    const std::string where = bad + "tensor '" + tname + "'";
    if (!seen.insert(tname).second)
      throw Error(bad + "it holds two tensors named '" + tname + "' (the file was not written by this program)");
    const auto& jdtype = field("dtype");
    if (!jdtype.is_string()) throw Error(where + " has a type that is not a string");
    torch::ScalarType dtype;
    try {
      dtype = dtypeFromName(jdtype.get<std::string>());
    } catch (const Error& x) {
      throw Error(where + " has an " + x.what());
    }
    const auto& jshape = field("shape");
    if (!jshape.is_array() || jshape.size() > 16) throw Error(where + " has a shape that is not a list of up to 16 sizes");
    std::vector<int64_t> shape;
    uint64_t numel = 1;
    bool overflow = false;
    for (const auto& d : jshape) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
        throw Error(where + " has a size that is not a whole number >= 0");
      const uint64_t n = d.get<uint64_t>();
      if (n > uint64_t(INT64_MAX)) overflow = true;
      else if (n != 0 && numel > UINT64_MAX / n) overflow = true;
      else numel *= n;
      shape.push_back(static_cast<int64_t>(std::min<uint64_t>(n, INT64_MAX)));
    }
    const uint64_t elem = c10::elementSize(dtype);
    if (!overflow && numel > UINT64_MAX / elem) overflow = true;
    const auto& joff = field("offset");
    const auto& jnb = field("nbytes");
    if (!joff.is_number_unsigned() || !jnb.is_number_unsigned())
      throw Error(where + " has an offset or byte count that is not a whole number >= 0");
    const uint64_t off = joff.get<uint64_t>(), nb = jnb.get<uint64_t>();
    if (overflow || numel * elem != nb)
      throw Error(where + " declares a shape that does not match its byte count (" + byteCount(nb) + ")");
    if (nb > data_size || off > data_size - nb)
      throw Error(where + " does not fit the file (it declares " + byteCount(nb) + " at offset " + std::to_string(off) +
                  "; the file holds " + byteCount(data_size) + " of tensor data)");
    torch::Tensor t;
    try {
      t = torch::empty(shape, torch::TensorOptions().dtype(dtype));
    } catch (const std::exception& x) {
      throw Error(outOfMemoryMessage(x, "read " + name + ": tensor '" + tname + "' needs " + byteCount(nb)), errorDetail(x));
    }
    if (nb > 0) std::memcpy(t.data_ptr(), data + data_start + off, nb);
    archive.tensors.emplace_back(tname, std::move(t));
  }
  archive.header.erase("tensors");
  return archive;
}

}  // namespace automod
