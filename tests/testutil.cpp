#include "testutil.h"

#include <QProcess>
#include <QProcessEnvironment>

#include <fstream>

#include "core/io/image.h"
#include "core/util/error.h"

namespace automod::test {

std::unique_ptr<Automodulator> tinyModel(int resolution, uint64_t seed, int channels) {
  torch::manual_seed(seed);
  ModelConfig c;
  c.resolution = resolution;
  c.image_channels = channels;
  c.latent_dim = 32;
  c.widths.clear();
  for (int b = 0; b < c.numBlocks(); ++b) c.widths.push_back(b < 2 ? 16 : 8);
  c.width_table = "test";
  return std::make_unique<Automodulator>(c);
}

void makeExpressive(Automodulator& model, double gain) {
  torch::NoGradGuard no_grad;
  for (auto* dec : {&model.decoder, &model.ema})
    for (auto& p : (*dec)->named_parameters())
      if (p.key().find("style.weight") != std::string::npos) p.value().mul_(gain);
}

std::string automodBin() {
  auto env = QProcessEnvironment::systemEnvironment();
  return env.value("AUTOMOD_BIN", "automod").toStdString();
}

RunResult runAutomod(const std::vector<std::string>& args, int timeout_ms) {
  return runProgram(automodBin(), args, timeout_ms);
}

RunResult runProgram(const std::string& program, const std::vector<std::string>& args, int timeout_ms) {
  QProcess p;
  QStringList a;
  for (auto& s : args) a << QString::fromStdString(s);
  p.start(QString::fromStdString(program), a);
  RunResult r;
  if (!p.waitForStarted(10000)) {
    r.err = "could not start " + program;
    return r;
  }
  p.closeWriteChannel();
  if (!p.waitForFinished(timeout_ms)) {
    p.kill();
    p.waitForFinished();
    r.err = "timed out";
    return r;
  }
  r.code = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
  r.out = p.readAllStandardOutput().toStdString();
  r.err = p.readAllStandardError().toStdString();
  return r;
}

double maxAbsDiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

std::filesystem::path tmpPath(const QTemporaryDir& dir, const std::string& name) {
  return std::filesystem::path(dir.path().toStdString()) / name;
}

void writeTestImage(const std::filesystem::path& path, int width, int height, uint64_t seed) {
  torch::manual_seed(seed);
  auto small = torch::rand({1, 3, 4, 4}) * 255;
  auto big = torch::nn::functional::interpolate(
      small, torch::nn::functional::InterpolateFuncOptions()
                 .size(std::vector<int64_t>{height, width})
                 .mode(torch::kBilinear)
                 .align_corners(false));
  writeImage(path, big[0].permute({1, 2, 0}).round().clamp(0, 255).to(torch::kUInt8).contiguous());
}

std::filesystem::path referenceDir() {
  if (const char* d = std::getenv("AMOD_REFERENCE_DIR"); d && *d) return d;
  const char* src = std::getenv("AUTOMOD_SOURCE_DIR");
  return std::filesystem::path(src && *src ? src : AUTOMOD_SOURCE_DIR) / ".." / "shared" / "reference";
}

torch::Tensor readF32(const std::filesystem::path& dir, const nlohmann::json& spec) {
  const auto path = dir / spec.at("file").get<std::string>();
  const auto shape = spec.at("shape").get<std::vector<int64_t>>();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path.string());
  auto t = torch::empty(shape, torch::kFloat32);
  in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(t.numel() * 4));
  if (in.gcount() != t.numel() * 4) throw Error(path.string() + " is shorter than its shape");
  return t;
}

}  // namespace automod::test
