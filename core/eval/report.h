#pragma once
// The synthetic-face report, what `automod report` prints: attribute probes trained on
// labelled renders, the attribute-transfer measure of scale mixes, and few-exemplar attribute edits.
//
// Attribute transfer. For random ordered pairs (A, B) of held-out faces and each named scale s the
// report decodes two mirrored mixes: s from A with every other block from B, and s from B with the
// rest from A. For each attribute, over the pairs where A and B differ in it:
//   ceiling      the probe's accuracy on plain reconstructions (no mix can be read better);
//   readable     the fraction of mixes the probe reads as A's or B's class at all;
//   home scale   measured, not assumed: the scale whose swap moves the probe most towards the class
//                of the range's source (moves_probe = rate the mix is read as that source's class −
//                rate the other source's plain reconstruction is read so); chosen on the even-numbered
//                pairs;
//   follow       among the readable home-scale mixes of the odd-numbered pairs, the fraction read as
//                the class of the home scale's source. Choosing the home on other pairs keeps the
//                choice from inflating the follow rate.
// Chance for follow is exactly 1/2: the two mirrored mixes of a pair give each block to A in one and
// to B in the other, so a reading that does not depend on which blocks came from which face reads
// both as the same class c ∈ {A's, B's} and follows the home scale's source in exactly one of them.
// (A binary attribute's mixes are always readable: both classes are A's or B's.) The score is the
// mean of the follow rates weighted by how well the probe reads each attribute on reconstructions
// (its balanced accuracy rescaled so that chance, 1/K for K classes, is 0 and perfect is 1, floored
// at 0): attributes the probe cannot read weigh nothing, and no threshold decides. A weighted mean
// of follow rates at chance is at chance: 1/2.
#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/eval/eval.h"
#include "core/eval/face_probe.h"
#include "core/model/ranges.h"

namespace automod {

class Automodulator;

struct AttributeTransferOptions {
  /// Random ordered pairs (A, B) of distinct faces; even-numbered ones choose each attribute's home
  /// scale, odd-numbered ones score it.
  int pairs = 512;
  uint64_t seed = 0;
};

/// What swapping one named range between A and B does to the probe's reading of one attribute
/// (over the even-numbered pairs where A and B differ, both mirrored mixes of each).
struct RangeSwapEvidence {
  std::string scale;
  BlockRange blocks;
  int64_t mixes = 0;
  /// Fraction of the mixes read as the class of the range's source.
  double reads_range_source = 0.0;
  /// Fraction read as the class of the other blocks' source.
  double reads_rest_source = 0.0;
  /// reads_range_source minus the fraction of the rest source's plain reconstructions read as the
  /// range source's class: how far importing the range moves the probe towards its source.
  double moves_probe = 0.0;
};

struct AttributeTransfer {
  std::string attribute;
  /// Classes of the attribute present among the faces (chance for balanced accuracy is 1/classes).
  int classes = 0;
  /// The probe's accuracy and balanced accuracy on plain reconstructions of all the faces.
  double ceiling = 0.0;
  double ceiling_balanced_accuracy = 0.0;
  /// The attribute's weight in the score: ceiling_balanced_accuracy rescaled so that chance
  /// (1/classes) is 0 and perfect is 1, floored at 0.
  double weight = 0.0;
  /// Pairs (of all) whose faces differ in the attribute.
  int64_t pairs_that_differ = 0;
  /// One entry per named scale, coarse to fine.
  std::vector<RangeSwapEvidence> evidence;
  /// The scale with the largest moves_probe (the coarser one on a tie).
  std::string home_scale;
  /// Odd-numbered differing pairs × 2 mirrored home-scale mixes, those read as A's or B's class, and
  /// those read as the class of the home scale's source.
  int64_t home_mixes = 0;
  int64_t readable_mixes = 0;
  int64_t following_mixes = 0;

  double readableRate() const { return home_mixes > 0 ? double(readable_mixes) / double(home_mixes) : 0.0; }
  /// Among readable mixes; empty when none was readable.
  std::optional<double> followRate() const;
  /// Whether it counts in the score: a weight above 0 and a follow rate.
  bool scored() const { return weight > 0 && followRate().has_value(); }
  nlohmann::json toJson() const;
};

struct AttributeTransferReport {
  /// Chance level of a follow rate and of the score (see the header comment).
  static constexpr double kFollowChance = 0.5;

  int pairs = 0;
  int blocks = 0;
  std::vector<std::pair<std::string, BlockRange>> scales;
  std::vector<AttributeTransfer> attributes;
  /// The attributes that count (AttributeTransfer::scored), and the mean of their follow rates
  /// weighted by AttributeTransfer::weight; empty when none counts.
  std::vector<std::string> scored_attributes;
  std::optional<double> score;
  /// The same weighted means of the ceiling and the readable rate, to read the score against.
  double mean_ceiling = 0.0;
  double mean_readable_rate = 0.0;

  /// Throws automod::Error for an attribute the report does not have.
  const AttributeTransfer& attribute(const std::string& name) const;
  nlohmann::json toJson() const;
};

/// The attribute-transfer measure (header comment) for `model` on labelled faces uint8 [N, C, R, R]
/// (N ≥ 2) at the model's resolution. `codes`, when given, are the faces' per-block codes (refined
/// ones, refineInChunks) that the reconstructions and mixes use instead of their encoder codes.
AttributeTransferReport measureAttributeTransfer(EvalModel& model, AttributeProbe& probe, const torch::Tensor& images_u8,
                                                 const FaceAttributeTable& table,
                                                 const AttributeTransferOptions& options,
                                                 const LatentPlan* codes = nullptr);

/// Labelled renders: the probes' training set and the held-out set everything is measured on.
struct FaceReportData {
  FaceAttributeTable probe_table, eval_table;
  /// uint8 [N, C, R, R] at the model's resolution.
  torch::Tensor probe_images, eval_images;
};

/// Reads two folders of labelled renders (attributes.jsonl) at `resolution`; the eval table uses the
/// probe table's classes. Glasses and facial hair, when among `attributes`, become yes/no: each
/// single style is too rare to learn or edit.
FaceReportData loadFaceReportData(const std::filesystem::path& probe_dir, const std::filesystem::path& eval_dir,
                                  int resolution, int channels = 3,
                                  const std::vector<std::string>& attributes = defaultProbeAttributes());

struct FaceReportOptions {
  /// Pairs for the attribute-transfer measure.
  int pairs = 512;
  /// Positives and negatives for each attribute vector.
  int exemplars = 4;
  /// Probe training epochs.
  int epochs = 12;
  /// Attribute-vector strengths, each reported.
  std::vector<double> strengths{1.0, 2.0, 3.0};
  uint64_t seed = 0;
  std::function<void(const std::string&)> log;
  /// Refinement of the held-out renders' codes (off by default): attribute transfer mixes and the
  /// edited faces then start from the refined per-block codes; its progress as refineInChunks'.
  RefineOptions refine;
  std::function<void(int64_t, int64_t)> refine_progress;
};

/// The whole report as `automod report` prints it (without "model"): probe accuracy on renders,
/// the reconstruction PSNR / SSIM of the held-out renders (and with refinement, the encoder's and
/// the refinement's time), attribute transfer, glasses and facial-hair edits on each scale and on
/// all blocks.
nlohmann::json faceReport(Automodulator& model, const FaceReportData& data, const FaceReportOptions& options);

}  // namespace automod
