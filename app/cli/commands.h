#pragma once
// The `automod` subcommands. Each cli/cmd_*.cpp registers its own subcommand(s) with a static
// RegisterCommand (or RegisterBench for `automod bench <name>`), so adding a command touches no
// shared file. A callback throws on failure; main() turns that into a one-line reason and exit 1.
#include <CLI/CLI.hpp>

#include <string>

namespace automod::cli {

/// Options every command shares.
struct GlobalOptions {
  std::string device = "auto";
  int threads = 0;
  bool quiet = false;
  /// Print the library's own text (LibTorch, OpenCV, nlohmann::json) below each error message.
  bool verbose = false;
  /// Load model files whose weights are NaN or infinite, with a warning, instead of refusing them.
  bool allow_nonfinite = false;
};

using CommandAdder = void (*)(CLI::App& parent, GlobalOptions& global);

/// `static RegisterCommand reg(order, &addFoo);` adds a top-level subcommand; lower order lists first.
struct RegisterCommand {
  RegisterCommand(int order, CommandAdder add);
};
/// Same for subcommands of `automod bench`.
struct RegisterBench {
  RegisterBench(int order, CommandAdder add);
};

/// Adds every registered command (and the bench group) to the app.
void addAllCommands(CLI::App& app, GlobalOptions& global);

}  // namespace automod::cli
