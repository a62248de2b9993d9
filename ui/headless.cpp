#include <torch/torch.h>

#include "ui/headless.h"

#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>

#include <cstdio>
#include <iostream>

#include "core/align/photo.h"
#include "core/edit/ranges.h"
#include "core/io/image.h"
#include "core/io/model_file.h"
#include "core/metrics/image_quality.h"
#include "core/metrics/quality_reference.h"
#include "core/model/automodulator.h"
#include "core/util/device.h"
#include "core/util/error.h"
#include "core/io/default_model.h"
#include "ui/types.h"

namespace automod::ui {

QStringList samplePhotos() {
  const QString app_dir = QCoreApplication::instance() ? QCoreApplication::applicationDirPath() : QString();
  for (const QString& dir : {QString(AUTOMOD_SOURCE_DIR) + "/resources/samples",
                             app_dir + "/../share/automod-studio/samples",
                             QStringLiteral("/usr/share/automod-studio/samples")}) {
    QStringList out;
    for (const auto& fi : QDir(dir).entryInfoList(QDir::Files, QDir::Name))
      if (isImageFile(fi.absoluteFilePath().toStdString())) out << fi.absoluteFilePath();
    if (!out.isEmpty()) return out;
  }
  return {};
}

int runHeadless(const QString& modelPath, const QString& outDir, const QStringList& photosIn) {
  try {
    const auto device = resolveDevice("auto");
    std::unique_ptr<Automodulator> model;
    std::filesystem::path model_file;
    if (!modelPath.isEmpty()) {
      model_file = modelPath.toStdString();
      model = loadModel(model_file.string(), device);
    } else {
      auto d = openDefaultModel(device);
      if (!d.note.empty()) std::cerr << "automod-studio: note: " << d.note << "\n";
      model = std::move(d.model);
      model_file = d.path;
    }
    // Each photo's reconstruction against the model's own held-out figure, as the editor's tiles say.
    const QualityReference quality = qualityReference(model->metadata, model_file);
    QDir().mkpath(outDir);
    const std::filesystem::path out = outDir.toStdString();
    const QStringList photos = photosIn.isEmpty() ? samplePhotos() : photosIn;
    const int res = model->resolution(), ch = model->config().image_channels;

    std::vector<torch::Tensor> latents;
    std::vector<std::string> names;
    for (const auto& p : photos) {
      PhotoOptions options = photoOptionsForModel(model->metadata);
      options.center_crop_fallback = true;
      try {
        auto prepared = preparePhoto(p.toStdString(), res, ch, options);
        auto z = model->encode(toModelInput(prepared.image).to(device));
        auto rec = toImage(model->decode(z).cpu()).squeeze(0);
        const auto name = QFileInfo(p).completeBaseName().toStdString();
        writeImage(out / (name + "_reconstruction.png"),
                   makeGrid(torch::stack({prepared.image, rec}), 2, 2));
        latents.push_back(z);
        names.push_back(name);
        const auto a = prepared.image.permute({2, 0, 1}).unsqueeze(0), b = rec.permute({2, 0, 1}).unsqueeze(0);
        const double photo_psnr = psnr(a, b);
        char figures[64];
        std::snprintf(figures, sizeof figures, "PSNR %.1f dB, SSIM %.3f", photo_psnr, ssim(a, b));
        std::cout << "reconstructed " << p.toStdString() << ": " << figures << "\n";
        if (const auto hint = qualityHint(quality, photo_psnr); !hint.empty())
          std::cout << "  note: " << hint << "\n";
      } catch (const std::exception& e) {
        std::cerr << "automod-studio: cannot use " << p.toStdString() << ": " << errorMessage(e) << "\n";
      }
    }
    if (latents.empty()) {
      // No photos: two random codes stand in, so the mix is still shown.
      auto z = model->randomLatents(2, 0);
      latents = {z[0].unsqueeze(0), z[1].unsqueeze(0)};
      names = {"random0", "random1"};
    }
    // Coarse from the first, everything finer from the last (docs/design.md §2 scale ranges).
    const int blocks = model->numBlocks();
    const int split = std::min(coarseRange(BlockLayout::of(*model)).last + 1, blocks);
    auto a = latents.front(), b = latents.back();
    auto mix = toImage(model->decode(LatentPlan::mixed(a, b, split, blocks)).cpu()).squeeze(0);
    auto ra = toImage(model->decode(a).cpu()).squeeze(0), rb = toImage(model->decode(b).cpu()).squeeze(0);
    writeImage(out / "mix_coarse_fine.png", makeGrid(torch::stack({ra, mix, rb}), 3, 2));
    std::cout << "wrote " << (out / "mix_coarse_fine.png").string() << " (coarse from " << names.front()
              << ", intermediate and fine from " << names.back() << ")\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "automod-studio: error: " << errorMessage(e) << "\n";
    return 1;
  }
}

}  // namespace automod::ui
