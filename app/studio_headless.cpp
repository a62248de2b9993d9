#include "app/studio_headless.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/align/photo.h"
#include "core/edit/edit_state.h"
#include "core/edit/refine.h"
#include "core/io/default_model.h"
#include "core/io/image.h"
#include "core/io/model_file.h"
#include "core/metrics/quality_reference.h"
#include "core/model/automodulator.h"
#include "core/util/device.h"
#include "core/util/error.h"

namespace automod {
namespace fs = std::filesystem;

std::vector<fs::path> samplePhotos(const fs::path& program_dir) {
  std::vector<fs::path> dirs{fs::path(AUTOMOD_SOURCE_DIR) / "resources/samples"};
  if (!program_dir.empty()) dirs.push_back(program_dir / "../share/automod-studio/samples");
  dirs.push_back("/usr/share/automod-studio/samples");
  for (const auto& dir : dirs) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.is_regular_file() && isImageFile(e.path())) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    if (!out.empty()) return out;
  }
  return {};
}

namespace {
std::string figures(double psnr_db, double ssim_value) {
  char text[64];
  std::snprintf(text, sizeof text, "PSNR %.1f dB, SSIM %.3f", psnr_db, ssim_value);
  return text;
}
}  // namespace

int runStudioHeadless(const HeadlessOptions& options, std::ostream& out, std::ostream& err) {
  try {
    const auto device = resolveDevice("auto");
    std::shared_ptr<Automodulator> model;
    fs::path model_file = options.model;
    if (!model_file.empty()) {
      model = loadModel(model_file, device);
    } else {
      auto d = openDefaultModel(device);
      if (!d.note.empty()) err << "automod-studio: note: " << d.note << "\n";
      model = std::move(d.model);
      model_file = d.path;
    }
    // Each photo's reconstruction against the model's own held-out figure, as the editor's tiles say.
    const QualityReference quality = qualityReference(model->metadata, model_file);
    fs::create_directories(options.out);
    const auto photos = options.photos.empty() ? samplePhotos() : options.photos;
    PhotoOptions photo_options = photoOptionsForModel(model->metadata);
    photo_options.center_crop_fallback = true;
    // The editor's refinement (its default unless asked otherwise; 0: off).
    RefineOptions refine = editorRefinement(options.refine_steps > 0 ? options.refine_steps : 0);
    if (options.refine_steps == 0) refine.steps = 0;

    // The editor's state: the photos as its sources, then its default mix.
    EditState state;
    state.model = ModelBinding::of(*model, model_file);
    for (const auto& p : photos) {
      EditSource s;
      s.spec = SourceSpec::photo(p);
      s.name = p.stem().string();
      try {
        encodeSource(*model, s, photo_options);
        std::string line = "reconstructed " + p.string() + ": " + figures(s.psnr, s.ssim);
        if (refine.enabled()) {
          refineSource(*model, s, refine);  // the editor's Refine (core): codes, reconstruction, figures
          line += "; refined (" + std::to_string(s.refine.value("steps", 0)) + " steps): " + figures(s.psnr, s.ssim);
        }
        writeImage(options.out / (s.name + "_reconstruction.png"), makeGrid(torch::stack({s.picture, s.reconstruction}), 2, 2));
        out << line << "\n";
        if (!s.note.empty()) out << "  note: " << s.note << "\n";
        if (const auto hint = qualityHint(quality, s.psnr); !hint.empty()) out << "  note: " << hint << "\n";
        state.addSource(std::move(s));
      } catch (const std::exception& e) {
        err << "automod-studio: cannot use " << p.string() << ": " << errorMessage(e) << "\n";
      }
    }
    if (state.sources.empty()) {
      // No photos: two random codes stand in, so the mix is still shown.
      auto z = model->randomLatents(2, 0).cpu();
      for (int i = 0; i < 2; ++i) {
        EditSource s;
        s.name = "random" + std::to_string(i);
        s.spec = SourceSpec::random(0);
        s.codes = LatentPlan::uniform(z[i].unsqueeze(0), model->numBlocks());
        state.addSource(std::move(s));
      }
    }
    // Coarse from the first, everything finer from the last (docs/design.md §2 scale ranges).
    const auto& layout = state.model.layout;
    const int last = static_cast<int>(state.sources.size()) - 1;
    state.assignRange(BlockRange{0, layout.size() - 1}, last);
    state.assignRange(coarseRange(layout), 0);
    torch::NoGradGuard no_grad;
    auto decode = [&](const LatentPlan& plan) { return toImage(model->decode(plan.to(model->device())).cpu()).squeeze(0); };
    const auto mix = decode(state.plan());
    const auto ra = decode(state.sources.front().codes), rb = decode(state.sources.back().codes);
    writeImage(options.out / "mix_coarse_fine.png", makeGrid(torch::stack({ra, mix, rb}), 3, 2));
    out << "wrote " << (options.out / "mix_coarse_fine.png").string() << " (coarse from " << state.sources.front().name
        << ", intermediate and fine from " << state.sources.back().name << ")\n";
    return 0;
  } catch (const std::exception& e) {
    err << "automod-studio: error: " << errorMessage(e) << "\n";
    return 1;
  }
}

}  // namespace automod
