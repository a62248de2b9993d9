#pragma once
// Opens checkpoints written by the authors' own code (AaltoVision/automodulator, pioneer/model.py and
// Session.save_all) as Automodulator models, exactly: the same encoder codes and decoded images as
// their code computes, to float32 rounding. The format and the architecture are described in
// docs/reference-architecture.md (after ../shared/reference/README.md).
//
// Everything is inferred from the tensor shapes (latent size, every width, default or small decoder,
// image channels), never assumed; what cannot be carried over is said in `not_carried`. The loader is
// as tolerant as the authors' own (`Session._load`) and no more: surplus spectral-norm vectors are
// ignored as their code ignores them, an optimiser state that cannot be read matters only for
// --training-state, and a checkpoint whose layers our networks cannot compute exactly (bilinear
// upsampling, the flip-invariance support block) is refused with the reason.
//
// The alignment of the photos a model was trained on is not in the file: a released model recognised
// by its iteration, architecture and resolution (releasedModels()) brings its own; any other checkpoint
// needs the caller's choice (needsAlignmentChoice), never a guess.
#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/io/torch_file.h"
#include "core/model/automodulator.h"

namespace automod {

/// The parts of an authors' checkpoint the importer uses, as plain tensors (names without
/// DataParallel's "module." prefix). Filled by readReferenceCheckpoint; tests may build one by hand or
/// replace its tensors. Read streamed, its tensors are placeholders (meta tensors: shape and type)
/// until load() or readInto() reads them from the file.
struct ReferenceCheckpoint {
  using StateDict = std::vector<std::pair<std::string, torch::Tensor>>;
  StateDict decoder;      ///< G_state_dict: the training decoder
  StateDict ema_decoder;  ///< G_running_state_dict: the EMA decoder, the one to edit with
  StateDict encoder;      ///< D_state_dict
  /// Spectral-norm u of every encoder convolution in creation order (block 0 conv 1, conv 2, ...).
  std::vector<torch::Tensor> snu;
  int64_t iteration = 0;  ///< images seen (the authors' "iteration" counts images)
  int phase = -1;         ///< resolution level: 4·2^phase px
  double alpha = 1.0;     ///< fade-in weight of the top block
  /// adaptive_loss_k: (latent_alpha, latent_scale), each [1, C·H·W], for resolution level k.
  std::vector<std::pair<torch::Tensor, torch::Tensor>> robust;
  struct AdamEntry {
    int64_t step = 0;
    torch::Tensor exp_avg, exp_avg_sq;
  };
  struct Optimizer {
    bool present = false;
    /// Why its state cannot be carried over (several parameter groups, an entry that is not Adam's),
    /// in words; empty when it can. Only `import --training-state` needs it.
    std::string problem;
    double lr = 0.0;
    int64_t params = 0;                  ///< parameters in its (single) group
    std::map<int64_t, AdamEntry> state;  ///< by parameter index
  };
  Optimizer optimizer_encoder;  ///< optimizerD: encoder, then the robust-loss parameters
  Optimizer optimizer_decoder;  ///< optimizerG: the decoder's parameters
  Optimizer optimizer_style;    ///< optimizerA: the AdaIN linears (flip-invariance training)
  std::string format;           ///< "zip" or "legacy"
  std::string location;         ///< where the storages were saved ("cpu", "cuda:0", ...)
  /// Read streamed: reads the placeholders (null when every tensor holds its elements).
  std::shared_ptr<const TorchTensorSource> source;

  const torch::Tensor* find(const StateDict& dict, const std::string& name) const;
  /// `t`'s elements: `t` itself, or read from the file when it is a placeholder.
  torch::Tensor load(const torch::Tensor& t) const;
  /// Copies `t`'s elements into `dst` (as many elements; converted to its type), from the file when
  /// `t` is a placeholder: a streamed import reads each tensor once, straight into the model.
  void readInto(const torch::Tensor& t, const torch::Tensor& dst) const;
  /// A placeholder `t` as a view of the file's mapping, where the file can give one
  /// (TorchTensorSource::view: nothing copied); undefined otherwise (then readInto).
  torch::Tensor view(const torch::Tensor& t) const;
};

/// Reads a `.pth` file of the authors' code (zip or legacy torch.save, saved on a CPU or a GPU).
/// Throws automod::Error with one line naming the problem: not a PyTorch file, a torch file that is
/// not an automodulator checkpoint (a bare tensor, another network's state dict), missing keys.
/// TorchRead::Streamed reads only the file's structure; tensors are read when imported.
ReferenceCheckpoint readReferenceCheckpoint(const std::filesystem::path& path, TorchRead mode = TorchRead::Whole);

/// The architecture a checkpoint's shapes describe.
struct ReferenceArchitecture {
  ModelConfig config;        ///< at the checkpoint's resolution (4·2^phase)
  std::string name;          ///< "default", "small" or "custom" (widths of neither)
  int reference_blocks = 0;  ///< blocks the authors' networks were built with (9: up to 1024 px)
};
ReferenceArchitecture inferReferenceArchitecture(const ReferenceCheckpoint& ckpt, const std::string& source);

/// How a parameter of ours is called in the authors' state dicts (without "module.").
struct ReferenceName {
  enum Network { Decoder, Encoder } network;
  std::string ours;         ///< within the network: "blocks.1.conv2.weight", "from_rgb.3.bias"
  std::string theirs;       ///< "progression.1.conv.1.conv.weight_orig", "from_rgb.5.bias"
  std::string alternative;  ///< another name of the same (shared) tensor, or empty
  bool reshape = false;     ///< same elements, another layout (noise scales)
  int snu = -1;             ///< an encoder weight: its spectral-norm vector's index in SNU
};
/// The names for a model with `stages` resolution levels; encoder names only when the authors'
/// encoder has `reference_blocks` > 0 blocks (9 in their code: up to 1024 px).
std::vector<ReferenceName> referenceParameterNames(int stages, int reference_blocks);

/// The alignments a model can ask for, with what each means (for a question or an error message).
struct AlignmentChoice {
  std::string name;     ///< "ffhq", "celebahq", "none"
  std::string meaning;  ///< "faces, aligned as in FFHQ", ...
};
const std::vector<AlignmentChoice>& alignmentChoices();

struct ReferenceImportOptions {
  /// "ffhq", "celebahq" or "none"; empty: the alignment of the released model the checkpoint is
  /// recognised as, and an automod::Error for any other checkpoint (needsAlignmentChoice).
  std::string alignment;
  /// In words, why `alignment` (for the provenance): "the library entry ffhq256"; empty: "chosen by
  /// the user".
  std::string alignment_source;
  /// Keep the file name only (not the folder) in the provenance.
  bool file_name_only = true;
};

struct ReferenceImport {
  std::unique_ptr<Automodulator> model;
  /// What went into metadata["provenance"].
  nlohmann::json provenance;
  /// The alignment chosen and why, in words: "recognised as ffhq256 (iteration 34740000, default
  /// architecture, 256 px)", "chosen with --alignment; not one of the released models".
  std::string alignment, alignment_reason;
  /// Sentences: what the file holds that the model does not (unused layers, blocks above the
  /// checkpoint's resolution, optimiser state when not asked for, surplus spectral-norm vectors, ...).
  std::vector<std::string> not_carried;
  /// Sentences: what the file holds that may make the import inexact, although it cannot tell.
  std::vector<std::string> warnings;
};

/// Builds the model: the EMA decoder from G_running_state_dict, the training decoder from
/// G_state_dict, the encoder with its spectral-norm vectors, stage = phase and the file's fade-in
/// alpha. Layer noise stays off for inference, as in the authors' editing API. `source` and `sha256`
/// go into the provenance. Throws automod::Error for an unrecognised checkpoint without
/// options.alignment (saying what the choices mean), and for a layout our networks cannot compute.
ReferenceImport importReference(const ReferenceCheckpoint& ckpt, const std::string& source, const std::string& sha256,
                                const ReferenceImportOptions& options = {});

/// readReferenceCheckpoint (streamed) + importReference, with the file's SHA-256 (computed on another
/// thread meanwhile). `checkpoint`, when given, receives the checkpoint (for referenceTrainingState).
ReferenceImport importReferenceFile(const std::filesystem::path& path, const ReferenceImportOptions& options = {},
                                    ReferenceCheckpoint* checkpoint = nullptr);

/// Whether importing needs the caller to choose an alignment: the checkpoint is not one of the
/// released models. The path form reads only the file's structure (fast, no tensor data).
bool needsAlignmentChoice(const ReferenceCheckpoint& ckpt, const std::string& source);
bool needsAlignmentChoice(const std::filesystem::path& path);

/// How referenceCheckpointTree writes a model in the authors' format.
struct ReferenceExportOptions {
  int64_t iteration = 0;  ///< the file's "iteration" (images seen)
  /// The blocks the authors' networks are built with (9: up to 1024 px); those above the model's
  /// resolution get random weights, as untrained blocks have.
  int reference_blocks = 9;
  /// Adam moments for every parameter of optimizerD and optimizerG (the shared checkpoints have
  /// none: their 'state' is empty).
  bool adam_moments = false;
  /// Robust-loss parameters at every one of the reference_blocks resolutions, one per image element
  /// (adaptive_loss_k: 3·(4·2^k)² each), random.
  uint64_t seed = 0;  ///< for every tensor the model does not have
};

/// `model` (built with the authors' widths: ModelConfig::reference) as the authors' Session.save_all
/// writes a checkpoint, for writeTorchFile: the inverse of importReference (phase = its stage, alpha
/// its fade-in alpha), for tests and benchmarks that need checkpoints in their format at other sizes
/// than the shared ones. Throws automod::Error for a model of other widths.
pickle::ValuePtr referenceCheckpointTree(Automodulator& model, const ReferenceExportOptions& options = {});

/// The released models (the authors' hubconf.py): name, resolution, architecture, iteration,
/// alignment. Used to recognise a file (by iteration, architecture and resolution: their SHA-256s
/// are not published) and by the model library.
struct ReleasedModel {
  std::string name;
  int resolution;
  std::string architecture;
  int64_t iteration;
  std::string alignment;
};
const std::vector<ReleasedModel>& releasedModels();
/// The released model a checkpoint is, or nullptr.
const ReleasedModel* recognisedReleasedModel(const ReferenceCheckpoint& ckpt, const std::string& source);
/// Where the authors published it: "<iteration>_state.pth" in Zenodo record 4298894 (their hubconf.py).
std::string releasedModelFile(const ReleasedModel& model);
std::string releasedModelUrl(const ReleasedModel& model);

}  // namespace automod
