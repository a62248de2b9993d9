#pragma once
// Attribute probes on synthetic faces (issue 7, docs/design.md §6 last item): small CNN classifiers trained in
// C++ on renders with ground-truth attributes (packaging/faces → attributes.jsonl), then used (by
// core/eval/report.h) to ask of a model's coarse/intermediate/fine mixes which source each attribute
// followed, and here whether an attribute vector built from a few exemplars flips its attribute and
// leaves the others alone.
#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/model/automodulator.h"

namespace automod {

/// Categorical attributes read from attributes.jsonl, each mapped to class ids 0..K−1. Classes beyond
/// the `max_classes − 1` most frequent are merged into one "other" class.
struct FaceAttributeTable {
  std::vector<std::string> names;
  /// classes[a][k]: the value of class k of attribute a.
  std::vector<std::vector<std::string>> classes;
  /// labels[a][i]: class id of image i for attribute a.
  std::vector<std::vector<int64_t>> labels;
  /// Image file of each row.
  std::vector<std::filesystem::path> files;

  int64_t size() const { return static_cast<int64_t>(files.size()); }
  int index(const std::string& name) const;
  /// [N] int64 labels of attribute a.
  torch::Tensor labelTensor(int a) const;
};

/// The attributes the probes use by default (categorical facesjs fields).
std::vector<std::string> defaultProbeAttributes();

/// Reads DIR/attributes.jsonl; `classes_from` (optional) fixes the class lists so that a second set
/// (e.g. the held-out renders) uses the same ids. Throws automod::Error for a missing/bad file.
FaceAttributeTable readFaceAttributes(const std::filesystem::path& dir, const std::vector<std::string>& names,
                                      int max_classes = 8, const FaceAttributeTable* classes_from = nullptr);

/// uint8 images [N, C, R, R] of a table's files, area-resized to `resolution`.
torch::Tensor loadFaceImages(const FaceAttributeTable& table, int resolution, int channels = 3);

/// A multi-head CNN: one softmax head per attribute over a shared trunk. Works at 32×32 (inputs are
/// area-resized), so it is cheap on a CPU.
struct AttributeProbeImpl : torch::nn::Module {
  AttributeProbeImpl(int channels, const std::vector<int64_t>& classes_per_attribute);
  /// Images in [−1, 1], any square size → logits per attribute.
  std::vector<torch::Tensor> forward(const torch::Tensor& images);
  /// Predicted class ids [N] per attribute (eval mode, no grad, batched).
  std::vector<torch::Tensor> predict(const torch::Tensor& images);

  torch::nn::Sequential trunk{nullptr};
  torch::nn::ModuleList heads{nullptr};
};
TORCH_MODULE(AttributeProbe);

struct ProbeTrainOptions {
  int epochs = 12;
  int batch = 64;
  double lr = 2e-3;
  uint64_t seed = 0;
  /// Fraction of training images blurred (down/up-sampled ×2 or ×4) so that the probe also reads
  /// a decoder's softer images.
  double blur_fraction = 0.5;
  /// Attributes whose classes are weighted (mean count / class count) in the loss, clamped to
  /// [1/5, 5]: unweighted, a rare class (glasses on 8% of faces) is never predicted and an edit adding
  /// it cannot be seen; weighted, a many-class head that cannot be read (nose shape at 32 px) guesses
  /// rare classes and loses accuracy. The report weights the yes/no heads only.
  std::vector<std::string> balanced;
};

/// Trains a probe on uint8 images [N, C, R, R] with a table's labels.
AttributeProbe trainAttributeProbe(const torch::Tensor& images_u8, const FaceAttributeTable& table,
                                   const ProbeTrainOptions& options);

/// Per-attribute accuracy of a probe on labelled images (float [−1,1] or uint8).
std::vector<double> probeAccuracy(AttributeProbe& probe, const torch::Tensor& images, const FaceAttributeTable& table);
/// Per-attribute balanced accuracy (the mean over present classes of the fraction of that class
/// predicted right): 1/K for a probe that always answers the majority class.
std::vector<double> probeBalancedAccuracy(AttributeProbe& probe, const torch::Tensor& images,
                                          const FaceAttributeTable& table);
/// Balanced accuracy of predicted class ids against labels (both [N] int64) over the classes
/// 0..classes−1 present among the labels.
double balancedAccuracy(const torch::Tensor& predicted, const torch::Tensor& labels, int64_t classes);

/// Merges every class of attribute `name` but "none" into one "present" class (ids: none 0,
/// present 1): a yes/no probe sees glasses that a per-style one, with each style on ~1% of faces,
/// never predicts. Throws automod::Error when the attribute has no "none" class.
void collapseToPresence(FaceAttributeTable& table, const std::string& name);

/// The classes of attribute `a` that mean "present": every class but "none" (facesjs writes "none"
/// for a face without glasses or facial hair; merged rare styles, "other", count as present).
/// Throws automod::Error when the attribute has no "none" class.
std::vector<int64_t> presentClasses(const FaceAttributeTable& table, int a);

/// Builds an attribute vector from `exemplars` positives and negatives of a binary split of
/// attribute `name` (any of `positive_classes` vs the rest), applies it to held-out faces lacking
/// it, restricted to `blocks`, and reports how often the probe then sees the attribute (any positive
/// class) and how often each other attribute changes. `codes`, when given, are the per-block codes of
/// every face of images_u8 (refined ones, core/edit/refine.h): the edited faces start from theirs
/// instead of their encoder codes (the vector still comes from the exemplars' encoder codes).
nlohmann::json attributeEditReport(Automodulator& model, AttributeProbe& probe, const torch::Tensor& images_u8,
                                   const FaceAttributeTable& table, const std::string& name,
                                   const std::vector<int64_t>& positive_classes, int exemplars,
                                   const std::vector<int>& blocks, double strength, uint64_t seed,
                                   const LatentPlan* codes = nullptr);

}  // namespace automod
