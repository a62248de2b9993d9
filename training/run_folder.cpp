#include "training/run_folder.h"

#include <cctype>

#include "core/io/archive.h"
#include "core/util/error.h"

namespace automod {
namespace fs = std::filesystem;

RunFolderState inspectRunFolder(const fs::path& folder) {
  RunFolderState s;
  std::error_code ec;
  const auto latest = folder / "latest.amod";
  if (!fs::exists(latest, ec)) return s;
  s.holds_run = true;
  try {
    const auto header = readArchive(latest).header;
    if (header.contains("training")) {
      s.images_seen = header["training"].value("images_seen", int64_t(-1));
      if (header["training"].contains("preset") && header["training"]["preset"].is_object())
        s.preset = header["training"]["preset"].value("name", std::string());
    }
  } catch (const std::exception&) {
    // A damaged checkpoint still means the folder holds a run.
  }
  return s;
}

void clearRunFolder(const fs::path& folder) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    if (!entry.is_regular_file()) continue;
    const auto name = entry.path().filename().string();
    const auto ext = entry.path().extension().string();
    const bool run_file = name == "latest.amod" || name == "log.jsonl" || name == "config.json" ||
                          (name.rfind("checkpoint-", 0) == 0 && ext == ".amod") ||
                          ((name.rfind("samples-", 0) == 0 || name.rfind("reconstructions-", 0) == 0 ||
                            name.rfind("mixes-", 0) == 0) &&
                           ext == ".png");
    if (!run_file) continue;
    std::error_code rm;
    fs::remove(entry.path(), rm);
    if (rm) throw Error("cannot remove " + entry.path().string() + " to start the run afresh: " + rm.message());
  }
}

fs::path proposeRunFolder(const fs::path& parent, const std::string& preset, const std::string& data, std::time_t when) {
  auto clean = [](const std::string& text) {
    std::string out;
    for (char c : text) {
      const auto u = static_cast<unsigned char>(c);
      out += std::isalnum(u) ? static_cast<char>(std::tolower(u)) : '-';
    }
    while (out.find("--") != std::string::npos) out.erase(out.find("--"), 1);
    while (!out.empty() && out.front() == '-') out.erase(0, 1);
    while (!out.empty() && out.back() == '-') out.pop_back();
    return out.empty() ? std::string("run") : out.substr(0, 40);
  };
  std::tm tm{};
  localtime_r(&when, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M", &tm);
  const std::string base = clean(preset) + "-" + clean(data) + "-" + stamp;
  fs::path candidate = parent / base;
  std::error_code ec;
  for (int k = 2; fs::exists(candidate, ec) && k < 10000; ++k) candidate = parent / (base + "-" + std::to_string(k));
  return candidate;
}

}  // namespace automod
