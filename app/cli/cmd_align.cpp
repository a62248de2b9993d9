// automod align PHOTO… -o DIR: FFHQ-aligned crops + a JSON sidecar per crop (transform for paste-back).
#include <fstream>
#include <iostream>

#include "app/cli/common.h"
#include "core/align/photo.h"
#include "core/io/image.h"
#include "core/util/error.h"

namespace automod::cli {
namespace fs = std::filesystem;
namespace {

nlohmann::json faceJson(const DetectedFace& f) {
  nlohmann::json lm = nlohmann::json::array();
  for (auto& p : f.landmarks) lm.push_back({p.x, p.y});
  return {{"box", f.box}, {"score", f.score}, {"landmarks", lm}};
}

void writeSidecar(const fs::path& path, const fs::path& photo, const fs::path& crop, const PreparedPhoto& p) {
  nlohmann::json faces = nlohmann::json::array();
  for (auto& f : p.faces) faces.push_back({{"box", f.box}, {"score", f.score}});
  nlohmann::json j{{"photo", fs::absolute(photo).string()},
                   {"crop", crop.filename().string()},
                   {"aligned", p.aligned},
                   {"face", p.face_index},
                   {"faces", faces},
                   {"transform", p.transform.toJson()}};
  if (p.face_index >= 0) j["landmarks"] = faceJson(p.faces[p.face_index])["landmarks"];
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  if (!out) throw Error("cannot write " + path.string());
}

void addAlignCommand(CLI::App& app, GlobalOptions& global) {
  struct Opts {
    std::vector<std::string> photos;
    std::string out, style = "ffhq";
    int size = 256, face = -1, channels = 3;
    bool all_faces = false, center_crop = false, search_everywhere = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("align", "FFHQ-style face alignment: aligned PNGs + JSON sidecars for paste-back");
  cmd->add_option("PHOTO", o->photos, "image files")->required();
  cmd->add_option("-o,--out", o->out, "output folder")->required();
  cmd->add_option("--size", o->size, "crop size in pixels")->capture_default_str()->check(CLI::Range(8, 4096));
  auto* all = cmd->add_flag("--all-faces", o->all_faces, "write every face found (NAME_face0.png, NAME_face1.png, ...)");
  cmd->add_option("--face", o->face, "which face (0 = largest, in order of size)")->check(CLI::NonNegativeNumber)->excludes(all);
  cmd->add_flag("--center-crop", o->center_crop, "center-crop photos in which no face is found instead of failing");
  cmd->add_flag("--search-everywhere", o->search_everywhere, kSearchEverywhereHelp);
  cmd->add_option("--channels", o->channels, "1 = grey, 3 = RGB")->check(CLI::IsMember({1, 3}));
  cmd->add_option("--style", o->style, "crop: ffhq, or celebahq (CelebA-HQ's half-pixel-shifted square)")
      ->check(CLI::IsMember({"ffhq", "celebahq"}))
      ->capture_default_str();
  cmd->callback([o, &global] {
    fs::create_directories(o->out);
    PhotoOptions opt;
    opt.style = o->style == "celebahq" ? AlignStyle::CelebAHQ : AlignStyle::FFHQ;
    opt.face = o->face;
    opt.center_crop_fallback = o->center_crop;
    opt.detect.exhaustive_search = o->search_everywhere;
    int failed = 0;
    for (auto& photo : o->photos) {
      std::vector<PreparedPhoto> crops;
      try {
        auto rgb = readImage(photo, 3);
        crops = preparePhotoImage(rgb, photo, o->size, o->channels, opt, o->all_faces);
      } catch (const Error& e) {
        std::cerr << "automod: skipped: " << e.what() << "\n";
        ++failed;
        continue;
      }
      const auto stem = fs::path(photo).stem().string();
      for (auto& p : crops) {
        if (!p.note.empty() && !global.quiet) std::cerr << "automod: " << p.note << "\n";
        std::string name = stem;
        if (o->all_faces && p.face_index >= 0) name += "_face" + std::to_string(p.face_index);
        const auto png = fs::path(o->out) / (name + ".png");
        writeImage(png, p.image);
        writeSidecar(fs::path(o->out) / (name + ".json"), photo, png, p);
        if (!global.quiet) std::cout << png.string() << "\n";
      }
    }
    if (failed == static_cast<int>(o->photos.size()))
      throw Error(o->photos.size() == 1 ? "the photo could not be aligned" : "none of the photos could be aligned");
    if (failed > 0) throw Error(std::to_string(failed) + " of " + std::to_string(o->photos.size()) + " photos could not be aligned");
  });
}

RegisterCommand reg(35, &addAlignCommand);

}  // namespace
}  // namespace automod::cli
