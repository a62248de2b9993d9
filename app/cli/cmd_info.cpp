// automod info
#include <iostream>

#include "app/cli/common.h"
#include "core/io/default_model.h"
#include "core/io/image.h"
#include "core/io/model_file.h"
#include "core/util/error.h"

namespace automod::cli {
namespace fs = std::filesystem;
namespace {

void addInfoCommand(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand("info", "Print a model's config and training metadata as JSON");
  auto model = std::make_shared<std::string>();
  cmd->add_option("MODEL", *model, "model file (.amod) or 'default'")->required();
  cmd->callback([model] {
    if (*model == "default") {
      auto p = defaultModelPath();
      if (p.empty()) throw Error("no default model is installed");
      *model = p.string();
    }
    std::cout << describeModelFile(*model).dump(2) << "\n";
  });
}

RegisterCommand reg(10, &addInfoCommand);

}  // namespace
}  // namespace automod::cli
