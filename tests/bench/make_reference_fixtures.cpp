// make_reference_fixtures TEMPLATE_DIR OUT_DIR [NZ] [SEED]: a fixture folder shaped like the shared
// one (../shared/reference) at another latent size, for checking that the `reference`-labelled tests
// derive every expectation from the folder's files and manifests (AMOD_REFERENCE_DIR=OUT_DIR).
//
// For each model of TEMPLATE_DIR/cases.json it writes a random model of the authors' widths at NZ
// (default and small decoders, the same phase) in their checkpoint format with this program's own
// writer (referenceCheckpointTree + writeTorchFile: zip, legacy and GPU-saved as the template lists),
// and the template's cases (same kinds, steps, alphas, block ranges and batch sizes) with inputs drawn
// here and expected outputs computed by this program's networks. The train-step fixtures are copied
// unchanged (their own nz). What this can show is that a test holds on another folder; it cannot
// show that the import is exact: only files written by the authors' code can (the shared folder).
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "core/io/reference_import.h"
#include "core/io/torch_file.h"
#include "core/model/latent_plan.h"

using namespace automod;
namespace fs = std::filesystem;

namespace {

void writeF32(const fs::path& path, const torch::Tensor& t) {
  auto c = t.detach().to(torch::kFloat32).contiguous();
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.numel() * 4));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

nlohmann::json spec(const std::string& file, const torch::Tensor& t) { return {{"file", file}, {"shape", t.sizes().vec()}}; }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: make_reference_fixtures TEMPLATE_DIR OUT_DIR [NZ] [SEED]\n";
    return 2;
  }
  try {
    const fs::path from = argv[1], to = argv[2];
    const int nz = argc > 3 ? std::stoi(argv[3]) : 64;
    const uint64_t seed = argc > 4 ? std::stoull(argv[4]) : 1;
    fs::create_directories(to);
    nlohmann::json manifest;
    std::ifstream(from / "cases.json") >> manifest;
    manifest["nz"] = nz;
    manifest["about"] = "Written by tests/bench/make_reference_fixtures (nz " + std::to_string(nz) +
                        "): this program's own networks and writer, not the authors' code.";
    torch::manual_seed(seed);
    torch::NoGradGuard no_grad;
    for (auto& entry : manifest["models"]) {
      const std::string name = entry.at("name");
      const bool small = entry.at("arch") == "small";
      const int phase = entry.at("phase");
      Automodulator model(ModelConfig::reference(4 << phase, nz, small));
      // Every parameter matters (as the template's perturbed weights): gains and styles off their
      // initial values, and a training decoder that differs from the EMA one.
      for (auto* net : {&model.decoder, &model.ema})
        for (auto& p : (*net)->parameters()) p.add_(torch::randn_like(p) * 0.05);
      for (auto& p : model.encoder->parameters()) p.add_(torch::randn_like(p) * 0.01);
      model.ema->setNoise(false);
      model.decoder->setNoise(false);

      // The checkpoint in each format the template lists.
      ReferenceExportOptions options;
      options.iteration = 34740000;  // as the template's files
      options.seed = seed;
      const auto tree = referenceCheckpointTree(model, options);
      for (auto& [format, file] : entry.at("files").items()) {
        TorchWriteOptions w;
        w.format = format == "legacy" ? "legacy" : "zip";
        w.location = format == "gpu-saved" ? "cuda:0" : "cpu";
        w.archive_name = fs::path(file.get<std::string>()).stem().string();
        writeTorchFile(to / file.get<std::string>(), tree, w);
      }

      // The cases, computed by this program's networks.
      int index = 0;
      for (auto& cs : entry["cases"]) {
        const std::string kind = cs.at("kind");
        const int step = cs.at("step");
        const double alpha = cs.at("alpha");
        const std::string stem = name + "-" + std::to_string(index++);
        const auto z_shape = cs.at("z").at("shape").get<std::vector<int64_t>>();
        if (kind == "encode") {
          const auto images = torch::rand(cs.at("images").at("shape").get<std::vector<int64_t>>()) * 2 - 1;
          const auto z = model.encoder->forward(images, step, alpha);
          writeF32(to / (stem + "-images.f32"), images);
          writeF32(to / (stem + "-z.f32"), z);
          cs["images"] = spec(stem + "-images.f32", images);
          cs["z"] = spec(stem + "-z.f32", z);
          continue;
        }
        auto z = torch::randn({z_shape.at(0), nz});
        z = z / z.norm(2, 1, true);
        torch::Tensor images;
        if (kind == "decode") {
          images = model.ema->forward(z, step, alpha);
        } else if (kind == "decode-training-decoder") {
          images = model.decoder->forward(z, step, alpha);
        } else if (kind == "mix") {
          std::vector<torch::Tensor> per_block(model.config().blocksAtStage(step));
          const auto& ranges = cs.at("blocks");
          for (size_t i = 0; i < ranges.size(); ++i)
            for (int b = ranges[i][0].get<int>(); b < ranges[i][1].get<int>(); ++b) per_block.at(b) = z.narrow(0, i, 1);
          images = model.ema->forward(LatentPlan(per_block), step, alpha);
        } else {
          throw std::runtime_error("unknown case kind " + kind);
        }
        writeF32(to / (stem + "-z.f32"), z);
        writeF32(to / (stem + "-images.f32"), images);
        cs["z"] = spec(stem + "-z.f32", z);
        cs["images"] = spec(stem + "-images.f32", images);
      }
      std::cerr << "wrote " << name << " (nz " << nz << ", " << (4 << phase) << " px)\n";
    }
    std::ofstream(to / "cases.json") << manifest.dump(1) << "\n";
    // The recorded training iteration has its own nz: copied as it is.
    for (const auto& e : fs::directory_iterator(from))
      if (e.path().filename().string().rfind("train-step-", 0) == 0)
        fs::copy_file(e.path(), to / e.path().filename(), fs::copy_options::overwrite_existing);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "make_reference_fixtures: " << e.what() << "\n";
    return 1;
  }
}
