#pragma once
// Where latents come from (docs/design.md §1, §4): a photo (aligned, or center-cropped), a latent file written
// by `automod encode`, or a random code from a seed. SourceCache encodes each photo once: entries are
// keyed by the file's content hash, the photo options and the model's identity, so loading the same
// photo again (even under another name) never re-encodes it. A source also has per-block codes
// (codes()): a photo's refined ones (core/edit/refine.h) when the cache refines, cached per refine
// options, or its one code on every block.
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/align/photo.h"
#include "core/edit/refine.h"
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
  /// Code: the latent's values (the encoder's code of a refined photo).
  std::vector<float> code;
  /// Code: per-block codes, one per decoder block (a refined photo's, as recipes and projects store
  /// them: "z_blocks"); empty = `code` on every block.
  std::vector<std::vector<float>> block_codes;
  /// Code: the style offsets that go with block_codes ("z_offsets", offsetValues()); empty = none.
  std::vector<std::vector<float>> block_offsets;

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
  static SourceSpec inlineCode(std::vector<float> values, std::vector<std::vector<float>> per_block = {},
                               std::vector<std::vector<float>> offsets = {}) {
    SourceSpec s;
    s.kind = Kind::Code;
    s.code = std::move(values);
    s.block_codes = std::move(per_block);
    s.block_offsets = std::move(offsets);
    return s;
  }
  /// An inline source holding `codes` (one [1, D] code per block and their style offsets, e.g.
  /// refineCodes' for one photo) next to the encoder's code `z` [1, D] or [D].
  static SourceSpec inlineCodes(const torch::Tensor& z, const LatentPlan& codes);
  /// "seed:N" → random code; "FILE.json" or "FILE.json#K" → latent file; anything else → photo.
  static SourceSpec parse(const std::string& text);
  /// A short description for messages and recipes ("photo a.png", "seed 7").
  std::string describe() const;
};

/// One latent as `automod encode` writes it.
struct LatentRecord {
  LatentRecord() = default;
  LatentRecord(std::string source_name, torch::Tensor code, torch::Tensor per_block = {})
      : source(std::move(source_name)), z(std::move(code)), z_blocks(std::move(per_block)) {}
  std::string source;
  torch::Tensor z;  // [latent_dim], float, CPU
  /// Per-block codes [blocks, latent_dim] (`automod encode --refine`), or undefined.
  torch::Tensor z_blocks;
  /// Their style offsets (offsetValues()), or empty.
  std::vector<std::vector<float>> z_offsets;
};

/// Style offsets (LatentPlan::offsets) as recipes, projects and latent files store them
/// ("z_offsets"): one list of numbers per block, empty for a block without; empty when the plan
/// has none. Offsets of a batch's first row.
std::vector<std::vector<float>> offsetValues(const LatentPlan& codes);
/// The JSON form of offsetValues (a list of lists of numbers). Throws automod::Error "<where>: ..."
/// for anything else, more than 64 blocks or 65 536 values per block.
std::vector<std::vector<float>> offsetValuesFromJson(const nlohmann::json& j, const std::string& where);
/// Puts stored offsets on `codes` ([1, D] codes of the model's blocks); `widths`: the model's style
/// width per block (DecoderImpl::styleWidths; empty = not checked). Throws automod::Error "<what>
/// ..." for offsets of another number of blocks or another width (made with another model).
void setOffsetValues(LatentPlan& codes, const std::vector<std::vector<float>>& values,
                     const std::vector<int64_t>& widths, const std::string& what);
/// The model's style width per decoder block in use (DecoderImpl::styleWidths of its numBlocks()).
std::vector<int64_t> styleWidths(Automodulator& model);

/// Latent files: {"resolution", "latent_dim", "latents": [{"source", "z": [...], "z_blocks": [[...],
/// ...]}, ...]} ("z_blocks", a refined photo's per-block codes, only where the record has them).
/// Reading also accepts a bare JSON list of floats or a list of such lists.
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
  /// `refine`: how codes() refines photos (off by default).
  explicit SourceCache(Automodulator& model, PhotoOptions photo_options = {}, RefineOptions refine = {});

  /// The unit-norm latent [1, latent_dim] of a source, on the model's device. Photos are prepared
  /// through preparePhoto and encoded once per distinct content. Always the encoder's code, also
  /// when codes() refines.
  torch::Tensor latent(const SourceSpec& source);
  /// The source's per-block codes (numBlocks() codes [1, latent_dim], unit norm, on the model's
  /// device): a photo's refined codes when `refine` is enabled (refined once per photo and refine
  /// options, then cached; a cancelled refinement is returned but not cached), a latent file's or
  /// inline source's stored per-block codes, otherwise LatentPlan::uniform(latent(source)). Throws
  /// automod::Error for stored codes made for another number of blocks or latent size.
  LatentPlan codes(const SourceSpec& source, const RefineOptions& refine);
  /// codes() with the cache's own refine options.
  LatentPlan codes(const SourceSpec& source) { return codes(source, refine_); }
  const RefineOptions& refineOptions() const { return refine_; }
  void setRefineOptions(const RefineOptions& refine) { refine_ = refine; }
  /// Called after each refinement step (step, steps), e.g. for a progress bar; returning false
  /// cancels the refinement.
  void setRefineProgress(std::function<bool(int step, int steps)> progress) { refine_progress_ = std::move(progress); }
  /// What the last refinement codes() ran or found cached: PSNR (dB) of the photo's reconstruction
  /// from the encoder's code and from the refined codes, and the steps run; empty before any.
  struct RefineStats {
    double psnr_before = 0, psnr_after = 0;
    int steps_run = 0;
    bool cancelled = false;
  };
  const std::optional<RefineStats>& lastRefine() const { return last_refine_; }
  /// Refinements run so far (for tests).
  int refineCount() const { return refines_; }
  /// The prepared (aligned or cropped) image of a photo source, uint8 [R, R, C], cached with it.
  torch::Tensor photoImage(const SourceSpec& source);
  /// The note preparePhoto left for the last photo ("no face found; center-cropped"), or empty.
  const std::string& lastNote() const { return last_note_; }

  const PhotoOptions& photoOptions() const { return photo_options_; }
  /// Encoder passes run so far (for tests and the GUI's status bar).
  int encodeCount() const { return encodes_; }
  void clear();

 private:
  struct Refined {
    LatentPlan codes;
    RefineStats stats;
  };
  struct Entry {
    torch::Tensor z, image;
    /// Refined codes by refine options (their JSON).
    std::map<std::string, Refined> refined;
  };
  Entry& photoEntry(const SourceSpec& source);

  Automodulator& model_;
  PhotoOptions photo_options_;
  std::string identity_;
  std::map<std::string, Entry> entries_;
  std::string last_note_;
  int encodes_ = 0;
  RefineOptions refine_;
  std::function<bool(int, int)> refine_progress_;
  std::optional<RefineStats> last_refine_;
  int refines_ = 0;
};

}  // namespace automod
