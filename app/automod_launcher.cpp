// `automod`: the command-line tool's front door. Loading LibTorch's shared libraries alone takes about
// 0.7 s here, more than everything `automod info` has to do: so this program, which links no
// LibTorch, answers `automod info MODEL` from the model file's header (core/io/model_header.h, the
// same description the full tool prints), and hands every other command line, unchanged, to the full
// tool `automod-run` installed beside it (exec: same process, arguments, exit status and output).
// `info` also goes to the full tool with --verify or any other option, for `default`, and whenever the
// header cannot be described (the full tool then says what is wrong with the file, in its words).
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string_view>

#include "core/io/archive_header.h"
#include "core/io/model_header.h"
#include "core/util/json_limits.h"

namespace {
namespace fs = std::filesystem;

// `automod info MODEL` with a model file named and nothing else: the header is enough.
bool answerInfo(int argc, char** argv) {
  if (argc != 3 || std::string_view(argv[1]) != "info") return false;
  const std::string_view model = argv[2];
  if (model.empty() || model.front() == '-' || model == "default") return false;
  try {
    const auto info = automod::describeModelHeader(argv[2], automod::readArchiveHeader(argv[2]), false);
    if (automod::jsonDepth(info) > automod::JsonLimits{}.max_depth) return false;
    std::cout << info.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n" << std::flush;
    return static_cast<bool>(std::cout);
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (answerInfo(argc, argv)) return 0;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  const fs::path full = (ec ? fs::path(argv[0]).parent_path() : self.parent_path()) / "automod-run";
  ::execv(full.c_str(), argv);
  std::cerr << "error: cannot start " << full.string() << " (the full automod tool, installed beside this one): "
            << std::strerror(errno) << "\n";
  return 127;
}
