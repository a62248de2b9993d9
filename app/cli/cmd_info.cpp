// automod info
#include <iostream>

#include "app/cli/common.h"
#include "core/io/default_model.h"
#include "core/io/image.h"
#include "core/io/model_file.h"
#include "core/util/error.h"
#include "core/util/json_limits.h"

namespace automod::cli {
namespace fs = std::filesystem;
namespace {

void addInfoCommand(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand("info", "Print a model's config and training metadata as JSON");
  auto model = std::make_shared<std::string>();
  auto verify = std::make_shared<bool>(false);
  cmd->add_option("MODEL", *model, "model file (.amod) or 'default'")->required();
  cmd->add_flag("--verify", *verify,
                "read the whole file: its checksum, its weights' shapes and that they are numbers (without it only "
                "the header is read and \"integrity\" says \"not verified\")");
  cmd->callback([model, verify, &global] {
    prepare(global);
    if (*model == "default") {
      auto p = defaultModelPath();
      if (p.empty()) throw Error("no default model is installed");
      *model = p.string();
    }
    const auto info = describeModelFile(*model, loadOptions(global, torch::kCPU), *verify);
    // dump() recurses once per level: the header was depth-checked when read, and this says so again
    // for whatever describeModelFile adds. Names that are not UTF-8 (file names) are printed with U+FFFD.
    if (jsonDepth(info) > JsonLimits{}.max_depth) throw Error(*model + ": its description is nested too deeply to print");
    std::cout << info.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  });
}

RegisterCommand reg(10, &addInfoCommand);

}  // namespace
}  // namespace automod::cli
