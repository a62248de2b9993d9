// `automod`: the command-line face of Automodulator Studio (docs/design.md §8).
#include <iostream>

#include "app/cli/commands.h"
#include "app/cli/common.h"
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
  app.add_flag("--verbose", global.verbose, "with an error, also print the underlying library's message");
  app.add_flag("--allow-nonfinite", global.allow_nonfinite,
               "load model files whose weights are NaN or infinite (with a warning) instead of refusing them");

  automod::cli::addAllCommands(app, global);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    automod::cli::printError(e, global);
    return 1;
  }
  return 0;
}
