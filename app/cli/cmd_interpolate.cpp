// automod interpolate — slerp morph between sources, globally or per scale; grid, frames or MP4.
#include <iostream>

#include "app/cli/common.h"
#include "core/edit/interpolate.h"
#include "core/edit/plan.h"
#include "core/edit/sources.h"
#include "core/io/image.h"
#include "core/io/video.h"
#include "core/util/error.h"

namespace automod::cli {
namespace fs = std::filesystem;
namespace {

void addInterpolateCommand(CLI::App& app, GlobalOptions& global) {
  struct Opts {
    std::string model, out, scale;
    std::vector<std::string> sources;
    int steps = 8, cols = 0;
    double fps = 12;
    bool noise = false;
    PhotoFlags photo;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("interpolate", "Slerp morph through two or more photos, latent files or seed:N; "
                                                "-o OUT.png (grid), OUT.mp4 (video) or a folder (frames)");
  cmd->add_option("MODEL", o->model, "model file (.amod) or 'default'")->required();
  cmd->add_option("SOURCE", o->sources, "two or more sources (A B [C...])")->required();
  cmd->add_option("--steps", o->steps, "number of images along the path")->capture_default_str()->check(CLI::Range(2, 10000));
  cmd->add_option("--scale", o->scale, "morph only these scales (coarse, intermediate, fine, K, A-B; comma list); the "
                                       "others stay at the first source");
  cmd->add_option("-o,--out", o->out, "output: .png/.jpg grid, .mp4 video, or a folder for numbered frames")->required();
  cmd->add_option("--cols", o->cols, "grid columns (0 = all in one row up to 8)");
  cmd->add_option("--fps", o->fps, "video frame rate")->capture_default_str();
  addPhotoFlags(cmd, o->photo);
  cmd->add_flag("--noise", o->noise, "enable the decoder's per-pixel noise");
  cmd->callback([o, &global] {
    if (o->sources.size() < 2) throw Error("interpolate needs at least two sources");
    const fs::path out = o->out;
    auto ext = out.extension().string();
    for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const bool video = ext == ".mp4" || ext == ".avi" || ext == ".mov";
    if (video && !videoAvailable()) throw Error("this build cannot write video (no OpenCV); use a .png output");
    auto device = prepare(global);
    auto model = openModel(o->model, device, global.quiet);
    model->ema->setNoise(o->noise);
    const int nb = model->numBlocks();
    SourceCache cache(*model, photoOptions(*model, o->photo));
    std::vector<torch::Tensor> keys;
    for (auto& s : o->sources) keys.push_back(cache.latent(SourceSpec::parse(s)));
    std::vector<BlockRange> ranges;
    if (!o->scale.empty()) ranges = parseBlockRanges(o->scale, BlockLayout::of(*model));
    auto plan = interpolationPlan(keys, o->steps, nb, ranges);
    // Decoded 16 frames at a time; a video and a frame folder take them as they come.
    auto decodeChunk = [&](int64_t i) {
      return toImage(model->decode(slicePlan(plan, i, std::min<int64_t>(16, o->steps - i))));
    };
    if (video) {
      ensureParentDir(out);
      VideoWriter writer(out, o->fps);
      for (int64_t i = 0; i < o->steps; i += 16) writer.add(decodeChunk(i));
      writer.finish();
    } else if (ext.empty()) {
      fs::create_directories(out);
      for (int64_t i = 0; i < o->steps; i += 16) {
        const auto chunk = decodeChunk(i);
        for (int64_t j = 0; j < chunk.size(0); ++j) {
          char name[32];
          std::snprintf(name, sizeof name, "frame_%04d.png", static_cast<int>(i + j));
          writeImage(out / name, chunk[j]);
        }
      }
    } else {
      ensureParentDir(out);
      std::vector<torch::Tensor> frames;
      for (int64_t i = 0; i < o->steps; i += 16) frames.push_back(decodeChunk(i));
      writeImage(out, makeGrid(torch::cat(frames), o->cols > 0 ? o->cols : std::min(o->steps, 8)));
    }
    if (!global.quiet) std::cout << out.string() << "\n";
  });
}

RegisterCommand reg(55, &addInterpolateCommand);

}  // namespace
}  // namespace automod::cli
