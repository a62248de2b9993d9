// libFuzzer entry point for the JSON files users hand us. The first byte picks the loader, the rest is
// the file's text; each must load or throw automod::Error (the project loader returns false with a
// message), never crash, recurse without bound or throw anything else.
//   0 recipe            parseJsonLimited + Recipe::fromJson (what Recipe::load runs)
//   1 latent file       readLatentFile
//   2 attribute file    AttributeVector::load
//   3 project           readProjectFile + EditState::fromRecipe (what the editor's File → Open runs)
//   4 alignment sidecar parseJsonLimited + AlignTransform::fromJson
// (Model configs are fuzzed inside model headers, by fuzz_model_file.)
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "core/align/face.h"
#include "core/edit/attribute.h"
#include "core/edit/edit_state.h"
#include "core/edit/project_file.h"
#include "core/edit/recipe.h"
#include "core/edit/sources.h"
#include "core/util/error.h"
#include "core/util/json_limits.h"

namespace {

// The loaders that take a path read this file, rewritten for each input.
const std::filesystem::path& scratch() {
  static const auto p = std::filesystem::temp_directory_path() / ("automod-fuzz-json-" + std::to_string(::getpid()));
  return p;
}

void writeScratch(std::string_view text) {
  std::ofstream out(scratch(), std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    switch (data[0] % 5) {
      case 0: {
        const auto j = automod::parseJsonLimited(text, "recipe fuzz.json");
        (void)automod::Recipe::fromJson(j, "/nonexistent", "recipe fuzz.json");
        break;
      }
      case 1:
        writeScratch(text);
        (void)automod::readLatentFile(scratch());
        break;
      case 2:
        writeScratch(text);
        (void)automod::AttributeVector::load(scratch());
        break;
      case 3: {
        writeScratch(text);
        const auto project = automod::readProjectFile(scratch());
        // Bound to a 16 px model of code size 8 (pictures are not decoded: the image fuzzer does that).
        automod::ModelBinding binding;
        binding.layout = automod::BlockLayout::forResolution(16, false);
        binding.resolution = 16;
        binding.latent_dim = 8;
        (void)automod::EditState::fromRecipe(project.recipe, project.view, binding, {});
        break;
      }
      case 4:
        (void)automod::AlignTransform::fromJson(automod::parseJsonLimited(text, "fuzz.json"));
        break;
    }
  } catch (const automod::Error&) {
  }
  return 0;
}
