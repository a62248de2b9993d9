#pragma once
// Where latents come from (docs/design.md §1, §4): a photo (aligned, or center-cropped), a latent file written
// by `automod encode`, or a random code from a seed. SourceCache encodes each photo once: entries are
// keyed by the file's content hash, the photo options and the model's identity, so loading the same
// photo again (even under another name) never re-encodes it.
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/align/photo.h"
#include "core/model/automodulator.h"

namespace automod {

struct SourceSpec {
  /// Code: a latent given inline (a source with no file behind it: a pasted image, an editor project's).
  enum class Kind { Photo, Latent, Random, Code };
  Kind kind = Kind::Photo;
  /// The photo or latent file.
  std::filesystem::path path;
  /// Latent files may hold several latents; which one.
  int index = 0;
  /// Random codes: the generator seed.
  uint64_t seed = 0;
  /// Photos: which face (0 = the largest; −1: the cache's photo options decide), or a centre crop
  /// instead of aligning.
  int face = -1;
  bool center_crop = false;
  /// Code: the latent's values.
  std::vector<float> code;

  static SourceSpec photo(std::filesystem::path p, int face = -1) {
    SourceSpec s;
    s.path = std::move(p);
    s.face = face;
    return s;
  }
  static SourceSpec centerCropped(std::filesystem::path p) {
    SourceSpec s = photo(std::move(p));
    s.center_crop = true;
    return s;
  }
  static SourceSpec latentFile(std::filesystem::path p, int index = 0) {
    SourceSpec s;
    s.kind = Kind::Latent;
    s.path = std::move(p);
    s.index = index;
    return s;
  }
  static SourceSpec random(uint64_t seed) {
    SourceSpec s;
    s.kind = Kind::Random;
    s.seed = seed;
    return s;
  }
  static SourceSpec inlineCode(std::vector<float> values) {
    SourceSpec s;
    s.kind = Kind::Code;
    s.code = std::move(values);
    return s;
  }
  /// "seed:N" → random code; "FILE.json" or "FILE.json#K" → latent file; anything else → photo.
  static SourceSpec parse(const std::string& text);
  /// A short description for messages and recipes ("photo a.png", "seed 7").
  std::string describe() const;
};

/// One latent as `automod encode` writes it.
struct LatentRecord {
  std::string source;
  torch::Tensor z;  // [latent_dim], float, CPU
};

/// Latent files: {"resolution", "latent_dim", "latents": [{"source", "z": [...]}, ...]}. Reading also
/// accepts a bare JSON list of floats or a list of such lists.
void writeLatentFile(const std::filesystem::path& path, const std::vector<LatentRecord>& latents, int resolution);
std::vector<LatentRecord> readLatentFile(const std::filesystem::path& path);

/// The image files of a folder (by isImageFile), sorted by name; a file argument is returned as is.
/// Throws automod::Error for a missing folder or one without images.
std::vector<std::filesystem::path> imageFilesIn(const std::filesystem::path& folder_or_file);

/// 64-bit FNV-1a of a file's bytes; throws automod::Error when the file cannot be read.
uint64_t hashFile(const std::filesystem::path& path);
/// A string that changes when the model's weights or config change (config + encoder/EMA samples).
std::string modelIdentity(Automodulator& model);

class SourceCache {
 public:
  explicit SourceCache(Automodulator& model, PhotoOptions photo_options = {});

  /// The unit-norm latent [1, latent_dim] of a source, on the model's device. Photos are prepared
  /// through preparePhoto and encoded once per distinct content.
  torch::Tensor latent(const SourceSpec& source);
  /// The prepared (aligned or cropped) image of a photo source, uint8 [R, R, C], cached with it.
  torch::Tensor photoImage(const SourceSpec& source);
  /// The note preparePhoto left for the last photo ("no face found; center-cropped"), or empty.
  const std::string& lastNote() const { return last_note_; }

  const PhotoOptions& photoOptions() const { return photo_options_; }
  /// Encoder passes run so far (for tests and the GUI's status bar).
  int encodeCount() const { return encodes_; }
  void clear();

 private:
  struct Entry {
    torch::Tensor z, image;
  };
  Entry& photoEntry(const SourceSpec& source);

  Automodulator& model_;
  PhotoOptions photo_options_;
  std::string identity_;
  std::map<std::string, Entry> entries_;
  std::string last_note_;
  int encodes_ = 0;
};

}  // namespace automod
