#pragma once
// The editor's state as plain core data (docs/design.md §1): the sources with their codes and where
// they came from, the per-block mix, the attribute edit and the morph, bound to one model. The
// editor's widgets, its undo steps and its background jobs all work on an EditState; whatever is
// shown is computed from it by the functions here (plan() for the result, galleryPlan() for the
// Sample tab, morphPlan() for the Morph tab). A project file is toRecipe() (what `automod apply`
// replays) plus the editor's view-only section (viewJson(): names, pictures, figures and the cached
// codes, so that a project reopens without encoding or refining again).
//
// A model change rebinds the state (rebind()): the sources stay, in order, with their codes cleared
// until the new model has encoded them again (sourcesToEncode(), then setCodes()); mix weights,
// the attribute (rebuilt from its exemplars by the new model) and the morph carry over.
#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "core/align/face.h"
#include "core/align/photo.h"
#include "core/edit/attribute.h"
#include "core/model/ranges.h"
#include "core/edit/recipe.h"
#include "core/edit/refine.h"
#include "core/edit/sources.h"
#include "core/model/latent_plan.h"

namespace automod {

class Automodulator;

/// One source of the editor.
struct EditSource {
  /// Stable within a state and its undo history (background jobs refer to sources by it).
  uint64_t id = 0;
  /// As shown in the photo strip ("grace_hopper.jpg", "grace_hopper.jpg (face 2)", "sample 3").
  std::string name;
  /// Where it came from. Photo: a file (its face, or a centre crop). Code: no file behind it (a pasted
  /// image, a kept sample, a code from a project): `picture` then stands in for the photo when
  /// another model needs it encoded.
  SourceSpec spec;
  /// The image the code was made from, uint8 [R, R, C] at the bound model's resolution (the aligned
  /// photo; a kept sample's pixels). Undefined only for a bare code.
  torch::Tensor picture;
  /// The model's reconstruction, uint8 [R, R, C] (the tile's second image); may be undefined.
  torch::Tensor reconstruction;
  /// The encoder's code [1, D], CPU float; undefined for a source that never went through the encoder.
  torch::Tensor z;
  /// One unit code [1, D] per decoder block (CPU float): the encoder's code in every block, unless
  /// the codes were refined (or the source is a kept sample of a conditional gallery). Empty while the
  /// bound model has not encoded the source yet.
  LatentPlan codes;
  /// The refinement that made `codes` (core/edit/refine's options as JSON); null when not refined.
  nlohmann::json refine;
  /// Reconstruction PSNR (dB) and SSIM of `picture` by `codes`; NaN when unknown.
  double psnr = std::numeric_limits<double>::quiet_NaN();
  double ssim = std::numeric_limits<double>::quiet_NaN();
  /// What the user should know about it ("no face found; center-cropped").
  std::string note;
  /// Photo → crop transform (paste-back) and the photo's size; set for photos encoded in this session.
  std::optional<AlignTransform> transform;

  bool hasCodes() const { return codes.size() > 0; }
  bool fromPhotoFile() const { return spec.kind == SourceSpec::Kind::Photo; }
  bool refined() const { return !refine.is_null(); }
};

/// An attribute edit on top of the mix: z' = normalise(z + strength·v) on the attribute's blocks.
struct EditAttribute {
  AttributeVector vector;  ///< name, exemplar files, block ranges, the direction
  double strength = 0;
};

/// The Morph tab's settings: between sources `a` and `b` (indices), the blocks of `scales` move
/// (core/model/ranges syntax, named scales preferred so that they survive a model change; empty: all
/// blocks), at t ∈ [0, 1]; a video of `frames` frames at `fps`.
struct EditMorph {
  int a = 0, b = 1;
  std::string scales;
  double t = 0.0;
  int frames = 48;
  double fps = 24.0;
  bool operator==(const EditMorph&) const = default;
};

/// What a state is bound to: one model (file and identity) and its block layout.
struct ModelBinding {
  std::filesystem::path path;  ///< empty: not from a file (the untrained stand-in, tests)
  std::string identity;        ///< sources.h modelIdentity(): changes with any weight
  BlockLayout layout;
  int resolution = 0;
  int latent_dim = 0;
  int channels = 3;
  /// The style width of each decoder block (the size of a refined source's style offsets there).
  std::vector<int64_t> style_widths;
  static ModelBinding of(Automodulator& model, const std::filesystem::path& path = {});
  bool empty() const { return layout.size() == 0; }
};

class EditState {
 public:
  ModelBinding model;
  std::vector<EditSource> sources;
  /// weights[b][i]: source i's blend weight in decoder block b (blocks() rows of sources.size()).
  /// A block whose weights are all zero takes source 0 (core's blockMixPlan rule).
  std::vector<std::vector<double>> weights;
  std::optional<EditAttribute> attribute;
  EditMorph morph;

  int blocks() const { return model.layout.size(); }
  /// Index of the source with this id, −1 when none.
  int indexOf(uint64_t id) const;
  /// An id no source of this state uses.
  uint64_t newId() const;
  /// Whether every source has its codes for the bound model (a plan can be made).
  bool ready() const;

  // Edits. Each keeps `weights` the right shape; indices out of range are ignored.
  /// Appends a source (the first one takes every block, later ones weigh 0); gives it an id if it has none.
  void addSource(EditSource source);
  /// Removes a source; a block that took only that source takes the first remaining one.
  void removeSource(int index);
  /// Sets source `source`'s weight in every block of `range`.
  void setWeight(const BlockRange& range, int source, double weight);
  /// Makes `source` the only contributor of `range`.
  void assignRange(const BlockRange& range, int source);
  /// The weight shown for a range: the one in its first block.
  double weight(const BlockRange& range, int source) const;
  /// Resizes `weights` to blocks() × sources.size() (new entries: 1 for source 0, else 0).
  void normaliseWeights();
  /// Whether the blocks of some named scale (coarse, intermediate, fine) are mixed differently: a
  /// per-block mix, which the editor shows in its advanced view.
  bool mixedPerBlock() const;
  /// Back to mixing by named scales: the blocks of each scale take the weights of its first block.
  void mixByScales();

  // What is decoded. Throws automod::Error when a source has no codes yet (ready() is false), there
  // are no sources, or the attribute does not fit the model.
  /// Block b blends the sources' codes of block b with weights[b] (normalised weighted sum).
  LatentPlan mixPlan() const;
  /// mixPlan() with the attribute edit applied (strength 0 or none changes nothing).
  LatentPlan plan() const;
  /// A conditional gallery (batch = count): blocks of `locked` follow plan() without the attribute,
  /// the others one random code per sample from `seed` (core/edit/sampling's conditionalPlan), then the
  /// attribute edit. With no sources, every block is random.
  LatentPlan galleryPlan(Automodulator& model, const std::vector<BlockRange>& locked, uint64_t seed, int count) const;
  /// The morph at t: blocks of morph.scales slerp from source a's codes to source b's (per block), the
  /// others keep a's. Throws when a or b is not a source.
  LatentPlan morphPlan(double t) const;
  /// The morph's moving blocks in the bound model.
  std::vector<BlockRange> morphRanges() const;

  /// The recipe `automod apply` replays to the same result: sources (photo files, or their codes),
  /// the mix as assignments, the attribute inline, the morph. Paths relative to `dir` when under it.
  Recipe toRecipe() const;
  /// The editor's view-only section: per source its name, note, figures, pictures (PNG, base64
  /// through `encode_png`) and cached codes (with the model identity they belong to).
  nlohmann::json viewJson(const std::function<std::string(const torch::Tensor&)>& encode_png) const;
  /// The state of a project: its recipe and the editor's section, bound to `model`. Cached codes are
  /// used when they belong to this model (same identity), otherwise the sources are left to encode.
  /// Throws automod::Error for a recipe the editor cannot show (unknown source kinds, bad weights).
  static EditState fromRecipe(const Recipe& recipe, const nlohmann::json& view, const ModelBinding& model,
                              const std::function<torch::Tensor(const std::string&)>& decode_png);
};

/// `state` bound to another model: the same sources (codes cleared unless the identity is the same),
/// mix weights carried block by block (by resolution, then by named scale, when the block count
/// differs), the morph, and the attribute (its vector cleared for rebuildAttribute unless the identity
/// is the same).
EditState rebind(const EditState& state, const ModelBinding& model);

/// Sources the bound model still has to encode (ids).
std::vector<uint64_t> sourcesToEncode(const EditState& state);

/// The refinement the editor runs (Refine on a tile, "refine new photos", the headless job):
/// core/edit/refine's options with `steps` steps (≤ 0: the default number, docs/refinement.md).
RefineOptions editorRefinement(int steps = 0);

/// A photo (or picture) brought to a model: the prepared image, its code, reconstruction and figures.
struct EncodedPicture {
  torch::Tensor picture, reconstruction, z;  // uint8 [R, R, C], uint8 [R, R, C], float [1, D] on the CPU
  double psnr = std::numeric_limits<double>::quiet_NaN(), ssim = std::numeric_limits<double>::quiet_NaN();
};
/// Encodes a prepared picture (uint8 [R, R, C] at the model's resolution) and reconstructs it.
EncodedPicture encodePicture(Automodulator& model, const torch::Tensor& picture);
/// Encodes source `source` of `state` again for `model` (its photo file with its face or centre
/// crop, else its picture resized to the model's resolution) and stores the result in it (codes
/// uniform: a refinement must run again). Throws automod::Error when it has neither.
void encodeSource(Automodulator& model, EditSource& source, const PhotoOptions& options);

/// Refines `source`'s codes from its picture (refineCodes with `options`, starting from its encoder
/// code, encoding the picture when it has none). Completed: its per-block codes, z, refinement record,
/// reconstruction and PSNR/SSIM are replaced and true is returned. Cancelled by `progress`: false, and
/// the source is unchanged.
bool refineSource(Automodulator& model, EditSource& source, const RefineOptions& options,
                  const std::function<bool(int step, int steps)>& progress = {});

/// The attribute of `state` rebuilt by `model` from its exemplar files (largest face of each), with
/// its block ranges carried over by named scale. Throws automod::Error when fewer than 2 + 2 exemplars
/// can be encoded.
EditAttribute rebuildAttribute(Automodulator& model, const EditAttribute& attribute, const BlockLayout& from,
                               const PhotoOptions& options);

/// Block ranges of layout `from` as the same named scales (or, where they are not whole scales, the
/// same resolutions) of layout `to`.
std::vector<BlockRange> carryRanges(const std::vector<BlockRange>& ranges, const BlockLayout& from,
                                    const BlockLayout& to);

}  // namespace automod
