// libFuzzer entry point for .amod model files: readArchiveBytes, then modelFromArchive and what
// `automod info` prints. Every input must either load or throw automod::Error; anything else (another
// exception, a sanitizer finding, a timeout, too much memory) is a crash. A hostile file has a valid
// checksum, so the harness gives every input one:
//   - an input that starts with "AMODFILE" is a whole archive: its trailer (end marker, size, checksum
//     of the format version it names: CRC-32 for 1, CRC-32C from 2) is replaced by a correct one;
//   - any other input is "HEADER\0DATA": the archive is built around that header text and tensor data,
//     so mutations of the JSON header reach modelFromArchive instead of failing the length field; in
//     format 1, or (when the input's size is 2 or 3 modulo 4) in format 2 with its data 64-byte aligned.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/io/archive.h"
#include "core/io/model_file.h"
#include "core/util/error.h"
#include "core/util/json_limits.h"

namespace {

std::string withTrailer(std::string b) {
  uint32_t version = 0;
  if (b.size() >= 12) std::memcpy(&version, b.data() + 8, 4);
  const uint32_t crc = version >= 2 ? automod::crc32c(b.data(), b.size()) : automod::crc32(b.data(), b.size());
  const uint64_t total = b.size() + 20;
  b += "AMODEND!";
  b.append(reinterpret_cast<const char*>(&total), 8);
  b.append(reinterpret_cast<const char*>(&crc), 4);
  return b;
}

std::string archiveBytes(const uint8_t* data, size_t size) {
  std::string in(reinterpret_cast<const char*>(data), size);
  if (size >= 8 && std::memcmp(data, "AMODFILE", 8) == 0) {
    if (in.size() >= 28 && in.compare(in.size() - 20, 8, "AMODEND!") == 0) in.resize(in.size() - 20);
    return withTrailer(std::move(in));
  }
  const auto nul = in.find('\0');
  const std::string header = in.substr(0, nul), tensors = nul == std::string::npos ? "" : in.substr(nul + 1);
  std::string b = "AMODFILE";
  const uint32_t version = size % 4 >= 2 ? 2 : 1;
  const uint64_t hlen = header.size();
  b.append(reinterpret_cast<const char*>(&version), 4);
  b.append(reinterpret_cast<const char*>(&hlen), 8);
  b += header;
  if (version >= 2) b.resize((b.size() + 63) / 64 * 64, '\0');
  return withTrailer(b + tensors);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes = archiveBytes(data, size);
  try {
    auto archive = automod::readArchiveBytes(bytes.data(), bytes.size(), "fuzz.amod");
    if (automod::jsonDepth(archive.header) > automod::JsonLimits{}.max_depth) __builtin_trap();
    (void)archive.header.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
    automod::LoadOptions options;
    options.allow_nonfinite = size % 2 == 1;
    options.warn = [](const std::string&) {};
    auto model = automod::modelFromArchive(archive, "fuzz.amod", options);
    if (!model) __builtin_trap();  // a load that "succeeds" must give a model
  } catch (const automod::Error&) {
  }
  return 0;
}
