// automod reconstruct
#include <iomanip>
#include <iostream>

#include "app/cli/common.h"
#include "core/align/photo.h"
#include "core/edit/refine.h"
#include "core/io/image.h"
#include "core/io/model_file.h"
#include "core/util/error.h"

namespace automod::cli {
namespace fs = std::filesystem;
namespace {

void addReconstructCommand(CLI::App& app, GlobalOptions& global) {
  struct Opts {
    std::string model, out;
    std::vector<std::string> photos;
    bool center_crop = false;
    PhotoFlags photo;
    int face = -1;
    RefineOptions refine;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("reconstruct", "Encode and decode photos; writes input | reconstruction pairs");
  cmd->add_option("MODEL", o->model, "model file (.amod) or 'default'")->required();
  cmd->add_option("PHOTO", o->photos, "image files")->required();
  cmd->add_option("-o,--out", o->out, "output folder")->required();
  addPhotoFlags(cmd, o->photo, "center-crop instead of aligning the face");
  cmd->add_option("--face", o->face, "which face when there are several (0 = largest)")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--center-crop", o->center_crop, "center-crop photos in which no face is found instead of skipping them");
  addRefineFlags(cmd, o->refine);
  cmd->callback([o, &global] {
    auto device = prepare(global);
    auto model = openModel(o->model, device, global.quiet);
    const int res = model->resolution(), ch = model->config().image_channels;
    fs::create_directories(o->out);
    PhotoOptions popt = photoOptions(*model, o->photo);
    popt.face = o->face;
    popt.center_crop_fallback = o->center_crop;
    int failed = 0;
    for (auto& p : o->photos) {
      torch::Tensor img;
      try {
        auto prepared = preparePhoto(p, res, ch, popt);
        if (!prepared.note.empty() && !global.quiet) std::cerr << "automod: " << prepared.note << "\n";
        img = prepared.image;
      } catch (const Error& e) {
        std::cerr << "automod: skipped: " << e.what() << "\n";
        ++failed;
        continue;
      }
      auto x = toModelInput(img);
      auto z = model->encode(x);
      torch::Tensor rec;
      if (o->refine.enabled()) {
        ProgressBar bar("refining " + p, global.quiet);
        auto r = refineCodes(*model, x, z, o->refine, [&](int step, int steps) {
          bar.update(step, steps);
          return true;
        });
        bar.finish();
        if (!global.quiet)
          std::cerr << std::fixed << std::setprecision(2) << "automod: " << p << ": refined in " << r.steps_run
                    << " steps, PSNR " << r.psnr_before.at(0) << " -> " << r.psnr_after.at(0) << " dB\n";
        rec = toImage(model->decode(r.codes))[0];
      } else {
        rec = toImage(model->decode(z))[0];
      }
      auto pair = makeGrid(torch::stack({img, rec}), 2, 0);
      auto out = fs::path(o->out) / (fs::path(p).stem().string() + "_recon.png");
      writeImage(out, pair);
      if (!global.quiet) std::cout << out.string() << "\n";
    }
    if (failed == static_cast<int>(o->photos.size())) throw Error("none of the photos could be read");
  });
}

RegisterCommand reg(40, &addReconstructCommand);

}  // namespace
}  // namespace automod::cli
