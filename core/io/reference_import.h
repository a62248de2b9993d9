#pragma once
// Opens checkpoints written by the authors' own code (AaltoVision/automodulator, pioneer/model.py and
// Session.save_all) as Automodulator models, exactly: the same encoder codes and decoded images as
// their code computes, to float32 rounding. The format and the architecture are described in
// docs/reference-architecture.md (after ../shared/reference/README.md).
//
// Everything is inferred from the tensor shapes (latent size, every width, default or small decoder,
// image channels), never assumed; what cannot be carried over is said in `not_carried`.
#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/model/automodulator.h"

namespace automod {

/// The parts of an authors' checkpoint the importer uses, as plain tensors (names without
/// DataParallel's "module." prefix). Filled by readReferenceCheckpoint; tests may build one by hand.
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
    double lr = 0.0;
    int64_t params = 0;                  ///< parameters in its (single) group
    std::map<int64_t, AdamEntry> state;  ///< by parameter index
  };
  Optimizer optimizer_encoder;  ///< optimizerD: encoder, then the robust-loss parameters
  Optimizer optimizer_decoder;  ///< optimizerG: the decoder's parameters
  Optimizer optimizer_style;    ///< optimizerA: the AdaIN linears (flip-invariance training)
  std::string format;           ///< "zip" or "legacy"
  std::string location;         ///< where the storages were saved ("cpu", "cuda:0", ...)

  const torch::Tensor* find(const StateDict& dict, const std::string& name) const;
};

/// Reads a `.pth` file of the authors' code (zip or legacy torch.save, saved on a CPU or a GPU).
/// Throws automod::Error with one line naming the problem: not a PyTorch file, a torch file that is
/// not an automodulator checkpoint (a bare tensor, another network's state dict), missing keys.
ReferenceCheckpoint readReferenceCheckpoint(const std::filesystem::path& path);

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

struct ReferenceImportOptions {
  /// "ffhq", "celebahq" or "none"; empty: from the released model the checkpoint is (by its
  /// iteration count and architecture), else "ffhq".
  std::string alignment;
  /// Keep the file name only (not the folder) in the provenance.
  bool file_name_only = true;
};

struct ReferenceImport {
  std::unique_ptr<Automodulator> model;
  /// What went into metadata["provenance"].
  nlohmann::json provenance;
  /// Sentences: what the file holds that the model does not (unused layers, blocks above the
  /// checkpoint's resolution, optimiser state when not asked for, ...).
  std::vector<std::string> not_carried;
};

/// Builds the model: the EMA decoder from G_running_state_dict, the training decoder from
/// G_state_dict, the encoder with its spectral-norm vectors, stage = phase. Layer noise stays off
/// for inference, as in the authors' editing API. `source` and `sha256` go into the provenance.
ReferenceImport importReference(const ReferenceCheckpoint& ckpt, const std::string& source, const std::string& sha256,
                                const ReferenceImportOptions& options = {});

/// readReferenceCheckpoint + importReference, with the file's SHA-256.
ReferenceImport importReferenceFile(const std::filesystem::path& path, const ReferenceImportOptions& options = {});

/// The released models (the authors' hubconf.py): name, resolution, architecture, iteration,
/// alignment. Used to recognise a file and by the model library.
struct ReleasedModel {
  std::string name;
  int resolution;
  std::string architecture;
  int64_t iteration;
  std::string alignment;
};
const std::vector<ReleasedModel>& releasedModels();
/// Where the authors published it: "<iteration>_state.pth" in Zenodo record 4298894 (their hubconf.py).
std::string releasedModelFile(const ReleasedModel& model);
std::string releasedModelUrl(const ReleasedModel& model);

}  // namespace automod
