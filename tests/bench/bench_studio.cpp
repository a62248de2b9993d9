// bench_studio: the editor's own latencies, through the real controller and worker (ui/), next to
// what core computes directly in the same run on the same model: a mix slider moved to the final
// image shown (against one decode), and a photo dropped to its tile shown (against align + encode +
// reconstruct), and the photos of a model change encoded again (against the same work done directly).
// Prints JSON lines with the ratios (the editor's overhead; 1.0 = none).
//
//   build/tests/bench_studio [--widths paper] [--resolution 256] [--reps 3] [--photos 4] [--threads N]
#include <torch/torch.h>

#include <QCoreApplication>
#include <QElapsedTimer>
#include <QEventLoop>
#include <QTemporaryDir>
#include <QTimer>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/align/photo.h"
#include "core/edit/edit_state.h"
#include "core/edit/session.h"
#include "core/io/image.h"
#include "core/io/model_file.h"
#include "core/model/automodulator.h"
#include "core/util/bench.h"
#include "core/util/device.h"
#include "ui/studio.h"

using namespace automod;
using namespace automod::ui;

namespace {

/// Runs the event loop until `done` holds (or `timeout_ms`).
std::function<void()> g_status;

// Waits as the editor's event loop does: asleep until an event (or a 10 ms tick) arrives. A loop of
// processEvents() without waiting would keep a core busy and slow the worker's threads down.
bool waitFor(const std::function<bool()>& done, int timeout_ms = 600000) {
  QElapsedTimer t;
  t.start();
  QTimer tick;
  tick.start(10);
  qint64 next_status = 10000;
  while (!done()) {
    if (t.elapsed() > timeout_ms) return false;
    if (t.elapsed() > next_status && g_status) {
      g_status();
      next_status += 10000;
    }
    QCoreApplication::processEvents(QEventLoop::AllEvents | QEventLoop::WaitForMoreEvents);
  }
  return true;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  QCoreApplication app(argc, argv);
  QCoreApplication::setOrganizationName("automod-bench");
  std::string widths = "paper";
  int resolution = 256, reps = 3, nphotos = 4, threads = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--widths") widths = v;
    else if (a == "--resolution") resolution = std::stoi(v);
    else if (a == "--reps") reps = std::stoi(v);
    else if (a == "--photos") nphotos = std::stoi(v);
    else if (a == "--threads") threads = std::stoi(v);
    else {
      std::cerr << "usage: bench_studio [--widths T] [--resolution R] [--reps N] [--photos N] [--threads N]\n";
      return 2;
    }
  }
  configureThreads(threads);
  QTemporaryDir dir;
  torch::manual_seed(0);
  auto model = std::make_shared<Automodulator>(ModelConfig::fromTable(widths, resolution));
  model->metadata["alignment"] = "ffhq";
  // Photos: the public-domain portraits (real faces, so that alignment runs) when installed, else
  // generated images (centre-cropped).
  std::vector<std::string> photos;
  for (const char* p : {"/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg",
                        "/usr/lib/python3/dist-packages/imageio/resources/images/astronaut.png"})
    if (std::filesystem::exists(p)) photos.push_back(p);
  while (static_cast<int>(photos.size()) < nphotos) {
    const auto p = (std::filesystem::path(dir.path().toStdString()) / ("photo" + std::to_string(photos.size()) + ".png")).string();
    auto img = (torch::rand({600, 500, 3}) * 255).to(torch::kUInt8);
    writeImage(p, img);
    photos.push_back(p);
  }
  photos.resize(static_cast<size_t>(nphotos));
  const double matmul = measureMatmulGflops();
  std::cout << nlohmann::json{{"bench", "studio"}, {"widths", widths}, {"resolution", resolution},
                              {"threads", at::get_num_threads()}, {"matmul_gflops", matmul}}
                   .dump()
            << std::endl;

  // Core directly: align + encode + reconstruct per photo, and one decode.
  PhotoOptions options = photoOptionsForModel(model->metadata);
  options.center_crop_fallback = true;
  std::vector<double> direct_photo;
  for (const auto& p : photos) {
    QElapsedTimer t;
    t.start();
    auto prepared = preparePhoto(p, model->resolution(), 3, options);
    encodePicture(*model, prepared.image);
    direct_photo.push_back(t.nsecsElapsed() / 1e6);
  }
  EditSession session(*model);
  const auto za = model->randomLatents(1, 1), zb = model->randomLatents(1, 2);
  const int nb = model->numBlocks();
  const double direct_decode = timeIt([&] {
    torch::NoGradGuard ng;
    session.decodeFull(LatentPlan::mixed(za, zb, 1, nb));
  }, reps, 1) * 1000.0;

  // The editor: the same photos dropped in, then coarse-slider moves (a change at block 0: the whole
  // decode runs again, as the direct figure does).
  StudioController c;
  c.setModel(model, "bench");
  c.photos()->setFaceMode(PhotoIntake::FaceMode::Largest);
  std::vector<double> tile;
  QElapsedTimer clock;
  int added = 0;
  QObject::connect(c.photos(), &PhotoIntake::photoAdded, [&] {
    tile.push_back(clock.nsecsElapsed() / 1e6);
    ++added;
  });
  g_status = [&] {
    std::cerr << "bench_studio: waiting: photos added " << added << ", idle " << c.idle() << ", worker busy "
              << c.worker()->isBusy() << ", re-encoding " << c.reencoding() << ", decode pending "
              << c.render()->decodePending() << ", ready " << c.document()->state().ready() << "\n";
    for (const auto& src : c.document()->state().sources)
      std::cerr << "  source " << src.name << ": " << src.codes.size() << " codes of " << c.document()->state().blocks() << "\n";
  };
  QObject::connect(c.photos(), &PhotoIntake::photoFailed, [&](const QString& path, const QString& why) {
    std::cerr << "bench_studio: " << path.toStdString() << " failed: " << why.toStdString() << "\n";
    ++added;
  });
  for (const auto& p : photos) {
    // One at a time, each timed from the drop to its tile (the decode it triggers runs after).
    const int before = added;
    clock.start();
    c.photos()->addPhotos({QString::fromStdString(p)});
    if (!waitFor([&] { return added > before; })) {
      std::cerr << "bench_studio: " << p << " never reached the strip\n";
      return 1;
    }
    if (!waitFor([&] { return c.idle() && !c.render()->decodePending(); }, 30000)) {
      std::cerr << "bench_studio: not idle after " << p << ": worker busy " << c.worker()->isBusy()
                << ", re-encoding " << c.reencoding() << ", decode pending " << c.render()->decodePending() << "\n";
      return 1;
    }
  }
  // Timed from the mix change to the final image handed to the window (resultReady); each move
  // changes the coarse blocks, so that every one is a whole new decode.
  int results = 0;
  QObject::connect(c.render(), &RenderScheduler::resultReady, [&] { ++results; });
  QObject::connect(c.render(), &RenderScheduler::decodeFailed, [&](const QString& why) {
    std::cerr << "bench_studio: decode failed: " << why.toStdString() << "\n";
    std::exit(1);
  });
  // Two sources with random codes, as kept samples are: a freshly initialised model encodes every
  // photo to nearly the same code, so that moving the mix between photos would change nothing.
  const int first_code_source = static_cast<int>(c.document()->sources().size());
  for (uint64_t seed : {11u, 12u}) {
    EditSource s;
    s.name = "random code " + std::to_string(seed);
    s.z = model->randomLatents(1, seed).cpu();
    s.codes = LatentPlan::uniform(s.z, model->numBlocks());
    c.document()->addSource(s);
  }
  c.document()->assignRange(Range::Coarse, first_code_source);
  if (!waitFor([&] { return c.idle() && !c.render()->decodePending(); }, 60000)) return 1;
  std::vector<double> slider;
  for (int r = 0; r < reps; ++r) {
    QElapsedTimer t;
    const int before = results;
    t.start();
    const auto weights_before = c.document()->state().weights;
    // The coarse range given wholly to the other random code.
    c.document()->assignRange(Range::Coarse, first_code_source + (r % 2 ? 0 : 1));
    if (c.document()->state().weights == weights_before) {
      for (const auto& src : c.document()->state().sources)
        std::cerr << "  source " << src.name << ": " << src.codes.size() << " codes\n";
      std::cerr << "bench_studio: the slider move changed nothing (" << c.document()->sources().size()
                << " sources, " << c.document()->state().blocks() << " blocks)\n";
      return 1;
    }
    if (!waitFor([&] { return results > before && !c.render()->decodePending(); })) {
      std::cerr << "bench_studio: no final image after a slider move\n";
      return 1;
    }
    slider.push_back(t.nsecsElapsed() / 1e6);
    std::cerr << "bench_studio: mix change " << r << ": " << slider.back() << " ms to the final image (its decode on the worker: "
              << c.render()->lastDecodeMs() << " ms)\n";
  }
  // A model change: every photo encoded again (one batch, the next one aligned while one encodes).
  torch::manual_seed(1);
  auto other = std::make_shared<Automodulator>(ModelConfig::fromTable(widths, resolution));
  other->metadata["alignment"] = "ffhq";
  QElapsedTimer t;
  t.start();
  c.setModel(other, "other");
  if (!waitFor([&] { return !c.reencoding(); })) {
    std::cerr << "bench_studio: the model change never finished encoding\n";
    return 1;
  }
  const double rebind_ms = t.nsecsElapsed() / 1e6;
  double direct_sum = 0;
  for (double v : direct_photo) direct_sum += v;

  auto line = [&](const char* what, double editor, double direct, const char* against) {
    std::cout << nlohmann::json{{"what", what},
                                {"editor_ms", editor},
                                {"direct_ms", direct},
                                {"ratio", direct > 0 ? editor / direct : 0.0},
                                {"direct", against}}
                     .dump()
              << std::endl;
  };
  line("slider to final image", median(slider), direct_decode, "one full decode (EditSession::decodeFull)");
  line("photo to tile", median(tile), median(direct_photo), "align + encode + reconstruct (core)");
  line("model change: photos encoded again", rebind_ms, direct_sum, "align + encode + reconstruct of every photo");
  std::cout << nlohmann::json{{"worker_threads", c.worker()->threads()}, {"peak_rss_mib", peakRssMiB()}}.dump()
            << std::endl;
  return 0;
}
