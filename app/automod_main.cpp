// `automod`: the command-line face of Automodulator Studio (SPEC §8).
#include <iostream>

#include "app/cli/commands.h"
#include "core/util/device.h"
#include "core/util/error.h"

int main(int argc, char** argv) {
  CLI::App app{"automod — train, edit and inspect automodulator models (Automodulator Studio)"};
  app.set_version_flag("--version", std::string("automod ") + AUTOMOD_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  automod::cli::GlobalOptions global;
  app.add_option("--device", global.device, "cpu, cuda or auto")->capture_default_str();
  app.add_option("--threads", global.threads, "CPU threads (0 = one per hardware thread)")->capture_default_str();
  app.add_flag("-q,--quiet", global.quiet, "no progress output");

  automod::cli::addAllCommands(app, global);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::cerr << "automod: error: " << automod::errorMessage(e) << "\n";
    return 1;
  }
  return 0;
}
