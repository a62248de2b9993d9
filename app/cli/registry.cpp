#include <algorithm>
#include <vector>

#include "app/cli/commands.h"

namespace automod::cli {
namespace {
using Entries = std::vector<std::pair<int, CommandAdder>>;
Entries& commands() {
  static Entries e;
  return e;
}
Entries& benches() {
  static Entries e;
  return e;
}
void addSorted(Entries entries, CLI::App& parent, GlobalOptions& global) {
  std::stable_sort(entries.begin(), entries.end(), [](auto& a, auto& b) { return a.first < b.first; });
  for (auto& [order, add] : entries) add(parent, global);
}
}  // namespace

RegisterCommand::RegisterCommand(int order, CommandAdder add) { commands().emplace_back(order, add); }
RegisterBench::RegisterBench(int order, CommandAdder add) { benches().emplace_back(order, add); }

void addAllCommands(CLI::App& app, GlobalOptions& global) {
  addSorted(commands(), app, global);
  auto* bench = app.add_subcommand("bench", "Print benchmark figures as JSON lines");
  bench->require_subcommand(1);
  addSorted(benches(), *bench, global);
}

}  // namespace automod::cli
