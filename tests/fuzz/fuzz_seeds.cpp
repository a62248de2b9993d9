// Writes the fuzzers' seed corpora into a folder of the build tree (never the repository):
//   model/  tiny .amod files (whole archives, and "HEADER\0DATA" for the structured mode)
//   image/  small JPEG, PNG (RGB, alpha, grey, 16-bit, EXIF), WebP, BMP, TIFF, PPM and PGM files
//   json/   a selector byte and a recipe, latent file, attribute file, project or alignment sidecar
// Usage: fuzz_seeds DIR
#include <opencv2/imgcodecs.hpp>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "core/align/face.h"
#include "core/edit/attribute.h"
#include "core/edit/sources.h"
#include "core/io/model_file.h"
#include "core/util/error.h"

namespace fs = std::filesystem;
using namespace automod;

namespace {

std::string readAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}
void writeAll(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

void modelSeeds(const fs::path& dir) {
  struct Variant {
    const char* name;
    int resolution;
    bool extra, plain;
  };
  for (auto v : {Variant{"tiny4", 4, false, false}, Variant{"tiny8", 8, false, true}, Variant{"flip8", 8, true, false}}) {
    ModelConfig c;
    c.resolution = v.resolution;
    c.latent_dim = 4;
    c.widths.assign(c.numBlocks(), 2);
    c.extra_8x8_block = v.extra;
    c.plain_modulation = v.plain;
    torch::manual_seed(0);
    Automodulator m(c);
    const auto file = dir / (std::string(v.name) + ".amod");
    saveModel(file, m);
    const std::string bytes = readAll(file);
    uint64_t hlen = 0;
    std::memcpy(&hlen, bytes.data() + 12, 8);
    // Structured mode: the header text, a NUL, the tensor data (without the trailer), which starts
    // at the next multiple of 64 bytes in format 2.
    const uint64_t data_start = (20 + hlen + 63) / 64 * 64;
    writeAll(dir / (std::string(v.name) + ".header"),
             bytes.substr(20, hlen) + '\0' + bytes.substr(data_start, bytes.size() - data_start - 20));
  }
}

void imageSeeds(const fs::path& dir) {
  cv::Mat rgb(24, 32, CV_8UC3), rgba(20, 20, CV_8UC4), grey(16, 16, CV_8UC1), deep(12, 12, CV_16UC3);
  cv::RNG rng(1);
  for (cv::Mat* m : {&rgb, &rgba, &grey, &deep}) rng.fill(*m, cv::RNG::UNIFORM, 0, m->depth() == CV_16U ? 65535 : 255);
  cv::imwrite((dir / "rgb.png").string(), rgb);
  cv::imwrite((dir / "rgba.png").string(), rgba);
  cv::imwrite((dir / "grey.png").string(), grey);
  cv::imwrite((dir / "deep.png").string(), deep);
  cv::imwrite((dir / "rgb.jpg").string(), rgb);
  cv::imwrite((dir / "grey.jpg").string(), grey);
  cv::imwrite((dir / "progressive.jpg").string(), rgb, {cv::IMWRITE_JPEG_PROGRESSIVE, 1});
  cv::imwrite((dir / "rgb.webp").string(), rgb);
  cv::imwrite((dir / "rgba.webp").string(), rgba);
  cv::imwrite((dir / "rgb.bmp").string(), rgb);
  cv::imwrite((dir / "rgb.tif").string(), rgb);
  cv::imwrite((dir / "rgb.ppm").string(), rgb);
  cv::imwrite((dir / "grey.pgm").string(), grey);
  // A PNG with an eXIf chunk (orientation 6), as tst_align writes them.
  std::vector<uchar> png;
  cv::imencode(".png", rgb, png);
  const unsigned char exif[] = {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0};
  std::string chunk = "\0\0\0\x1a" "eXIf";
  chunk[3] = static_cast<char>(sizeof exif);
  chunk.append(reinterpret_cast<const char*>(exif), sizeof exif);
  chunk += std::string(4, '\0');  // CRC (eXIf is ancillary: a bad CRC is a warning)
  std::string with(reinterpret_cast<const char*>(png.data()), png.size());
  with.insert(33, chunk);  // after the signature (8) and IHDR (25)
  writeAll(dir / "exif.png", with);
}

void jsonSeeds(const fs::path& dir, const fs::path& tmp) {
  auto seed = [&](const std::string& name, char selector, const std::string& text) {
    writeAll(dir / name, std::string(1, selector) + text);
  };
  seed("recipe.json", 0, R"({"kind": "automod-recipe", "version": 1, "resolution": 8, "align": true,
  "sources": {"a": {"photo": "a.png"}, "b": {"latent": "b.json", "index": 0}, "r": {"seed": 7}},
  "base": "input",
  "assignments": [{"scales": "coarse", "source": "a"},
                  {"scales": "fine", "sources": [{"source": "b", "weight": 2}, {"source": "r"}]}],
  "attributes": [{"file": "smile.json", "strength": 1.5, "scales": "fine"}]})");
  const auto latents = tmp / "latents.json";
  writeLatentFile(latents, {{"a.png", torch::randn({4})}, {"b.png", torch::randn({4})}}, 8);
  seed("latents.json", 1, readAll(latents));
  seed("latent-list.json", 1, "[0.5, -0.25, 0.125, 1]");
  AttributeVector a;
  a.name = "smile";
  a.resolution = 8;
  a.latent_dim = 4;
  a.positives = {"p1.png", "p2.png"};
  a.negatives = {"n1.png", "n2.png"};
  a.ranges = {BlockRange{0, 1}};
  a.vector = torch::randn({4});
  const auto attribute = tmp / "attribute.json";
  a.save(attribute);
  seed("attribute.json", 2, readAll(attribute));
  seed("project.json", 3, R"({"format": "automod-studio-project", "version": 1,
  "sources": [{"path": "a.png", "name": "a", "note": "", "latent": [0.5, -0.5, 0.5, -0.5],
               "aligned_png": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
               "reconstruction_png": ""}],
  "mix": {"block_weights": [[1], [1]]},
  "attribute": {"name": "smile", "scales": "fine", "resolution": 8, "blocks": 2, "strength": 1.5,
                "positives": ["p1.png"], "negatives": ["n1.png"], "vector": [0.1, 0.2, 0.3, 0.4]}})");
  seed("sidecar.json", 4, AlignTransform::centerCrop(64, 100, 80).toJson().dump());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_seeds DIR\n";
    return 2;
  }
  try {
    const fs::path root = argv[1];
    for (const char* sub : {"model", "image", "json", "tmp"}) fs::create_directories(root / sub);
    modelSeeds(root / "model");
    imageSeeds(root / "image");
    jsonSeeds(root / "json", root / "tmp");
    fs::remove_all(root / "tmp");
  } catch (const std::exception& e) {
    std::cerr << "fuzz_seeds: " << errorMessage(e) << "\n";
    return 1;
  }
  return 0;
}
