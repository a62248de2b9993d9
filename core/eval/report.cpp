#include "core/eval/report.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <set>

#include "core/metrics/image_quality.h"
#include "core/model/automodulator.h"
#include "core/util/error.h"

namespace automod {
namespace fs = std::filesystem;

namespace {

std::vector<int64_t> toVector(const torch::Tensor& t) {
  auto c = t.to(torch::kInt64).contiguous().cpu();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

// Predicted class ids per attribute, as plain vectors.
std::vector<std::vector<int64_t>> readings(AttributeProbe& probe, const torch::Tensor& images) {
  std::vector<std::vector<int64_t>> out;
  for (const auto& p : probe->predict(images)) out.push_back(toVector(p));
  return out;
}

std::vector<std::vector<int64_t>> readPlan(EvalModel& model, AttributeProbe& probe, const LatentPlan& plan) {
  return readings(probe, decodeInChunks(model, plan));
}

double fraction(int64_t part, int64_t whole) { return whole > 0 ? double(part) / double(whole) : 0.0; }

}  // namespace

std::optional<double> AttributeTransfer::followRate() const {
  if (readable_mixes == 0) return std::nullopt;
  return double(following_mixes) / double(readable_mixes);
}

nlohmann::json AttributeTransfer::toJson() const {
  nlohmann::json evidence_json = nlohmann::json::object();
  for (const auto& e : evidence)
    evidence_json[e.scale] = {{"blocks", e.blocks.toString()},
                              {"mixes", e.mixes},
                              {"reads_range_source", e.reads_range_source},
                              {"reads_rest_source", e.reads_rest_source},
                              {"moves_probe", e.moves_probe}};
  const auto follow = followRate();
  return {{"classes", classes},
          {"ceiling", ceiling},
          {"ceiling_balanced_accuracy", ceiling_balanced_accuracy},
          {"weight", weight},
          {"scored", scored()},
          {"pairs_that_differ", pairs_that_differ},
          {"home_scale", home_scale},
          {"home_evidence", evidence_json},
          {"home_mixes", home_mixes},
          {"readable_rate", readableRate()},
          {"follow_rate", follow ? nlohmann::json(*follow) : nlohmann::json()},
          {"follow_chance", AttributeTransferReport::kFollowChance}};
}

const AttributeTransfer& AttributeTransferReport::attribute(const std::string& name) const {
  for (const auto& a : attributes)
    if (a.attribute == name) return a;
  throw Error("the attribute-transfer report has no attribute '" + name + "'");
}

nlohmann::json AttributeTransferReport::toJson() const {
  nlohmann::json scales_json = nlohmann::json::object(), attrs = nlohmann::json::object();
  for (const auto& [name, range] : scales) scales_json[name] = range.toString();
  for (const auto& a : attributes) attrs[a.attribute] = a.toJson();
  return {{"definition",
           "per attribute, over pairs (A, B) that differ in it and both mirrored mixes (scale s from one face, "
           "the rest from the other): ceiling = probe accuracy on plain reconstructions; home_scale = the scale "
           "whose swap moves the probe most towards its source's class (even pairs); readable_rate = home-scale "
           "mixes read as A's or B's class; follow_rate = readable ones read as the home scale source's class "
           "(odd pairs); chance 0.5. score = mean follow_rate weighted by weight = (balanced accuracy on "
           "reconstructions - 1/classes) / (1 - 1/classes), floored at 0; chance 0.5"},
          {"pairs", pairs},
          {"blocks", blocks},
          {"scales", scales_json},
          {"follow_chance", kFollowChance},
          {"score", score ? nlohmann::json(*score) : nlohmann::json()},
          {"scored_attributes", scored_attributes},
          {"mean_ceiling", mean_ceiling},
          {"mean_readable_rate", mean_readable_rate},
          {"attributes", attrs}};
}

AttributeTransferReport measureAttributeTransfer(EvalModel& model, AttributeProbe& probe, const torch::Tensor& images_u8,
                                                 const FaceAttributeTable& table, const AttributeTransferOptions& o,
                                                 const LatentPlan* codes) {
  const int64_t n = images_u8.size(0);
  TORCH_CHECK(n >= 2, "the attribute-transfer measure needs at least two labelled faces");
  TORCH_CHECK(table.size() == n, "the attribute table lists ", table.size(), " faces for ", n, " images");
  TORCH_CHECK(o.pairs >= 2, "the attribute-transfer measure needs at least two pairs (one chooses the home scale, "
                            "the next scores it)");
  torch::NoGradGuard no_grad;
  std::mt19937_64 rng(o.seed);
  std::vector<int64_t> ia, ib;
  for (int p = 0; p < o.pairs; ++p) {
    int64_t a = static_cast<int64_t>(rng() % n), b = static_cast<int64_t>(rng() % n);
    if (a == b) b = (b + 1) % n;
    ia.push_back(a);
    ib.push_back(b);
  }
  const auto layout = model.layout();
  const int nb = layout.size();
  const LatentPlan z =
      codes ? *codes : LatentPlan::uniform(encodeInChunks(model, images_u8.to(torch::kFloat32).div(127.5).sub(1.0)), nb);
  TORCH_CHECK(z.size() == nb && z.batch() == n, "the faces' codes must be one [", n, ", D] batch per block");
  auto za = selectRows(z, torch::tensor(ia)), zb = selectRows(z, torch::tensor(ib));

  AttributeTransferReport report;
  report.pairs = o.pairs;
  report.blocks = nb;
  report.scales = namedRanges(layout);
  const auto recon = readPlan(model, probe, z);
  // forward[s]: scale s from A, the rest from B; mirror[s]: scale s from B, the rest from A.
  std::vector<std::vector<std::vector<int64_t>>> forward, mirror;
  for (const auto& [name, range] : report.scales) {
    forward.push_back(readPlan(model, probe, rangeMix(zb, za, range)));
    mirror.push_back(readPlan(model, probe, rangeMix(za, zb, range)));
  }

  double weights = 0, follow_sum = 0, ceiling_sum = 0, readable_sum = 0;
  for (size_t a = 0; a < table.names.size(); ++a) {
    const auto& y = table.labels[a];
    const auto& r = recon[a];
    AttributeTransfer t;
    t.attribute = table.names[a];
    auto labels = table.labelTensor(static_cast<int>(a));
    t.classes = static_cast<int>(std::set<int64_t>(y.begin(), y.end()).size());
    int64_t right = 0;
    for (int64_t i = 0; i < n; ++i) right += r[i] == y[i];
    t.ceiling = fraction(right, n);
    t.ceiling_balanced_accuracy =
        balancedAccuracy(torch::tensor(r), labels, static_cast<int64_t>(table.classes[a].size()));
    if (t.classes >= 2) {
      const double chance = 1.0 / t.classes;
      t.weight = std::max(0.0, (t.ceiling_balanced_accuracy - chance) / (1.0 - chance));
    }

    // Evidence (even-numbered pairs): per scale, both mirrored mixes of every differing pair.
    std::vector<int64_t> mixes(report.scales.size()), to_range(mixes.size()), to_rest(mixes.size()),
        baseline(mixes.size());
    for (int p = 0; p < o.pairs; ++p) {
      const int64_t A = ia[p], B = ib[p];
      if (y[A] == y[B]) continue;
      ++t.pairs_that_differ;
      if (p % 2 != 0) continue;
      for (size_t s = 0; s < report.scales.size(); ++s) {
        const int64_t f = forward[s][a][p], m = mirror[s][a][p];
        mixes[s] += 2;
        to_range[s] += (f == y[A]) + (m == y[B]);
        to_rest[s] += (f == y[B]) + (m == y[A]);
        baseline[s] += (r[B] == y[A]) + (r[A] == y[B]);
      }
    }
    int home = -1;
    for (size_t s = 0; s < report.scales.size(); ++s) {
      RangeSwapEvidence e{report.scales[s].first, report.scales[s].second, mixes[s], fraction(to_range[s], mixes[s]),
                          fraction(to_rest[s], mixes[s]), fraction(to_range[s] - baseline[s], mixes[s])};
      if (mixes[s] > 0 && (home < 0 || e.moves_probe > t.evidence[home].moves_probe)) home = static_cast<int>(s);
      t.evidence.push_back(e);
    }
    // Score (odd-numbered pairs): the home-scale mixes.
    if (home >= 0) {
      t.home_scale = report.scales[home].first;
      for (int p = 1; p < o.pairs; p += 2) {
        const int64_t A = ia[p], B = ib[p];
        if (y[A] == y[B]) continue;
        const int64_t f = forward[home][a][p], m = mirror[home][a][p];
        t.home_mixes += 2;
        t.readable_mixes += (f == y[A] || f == y[B]) + (m == y[A] || m == y[B]);
        t.following_mixes += (f == y[A]) + (m == y[B]);
      }
    }
    if (t.scored()) {
      report.scored_attributes.push_back(t.attribute);
      weights += t.weight;
      follow_sum += t.weight * *t.followRate();
      ceiling_sum += t.weight * t.ceiling;
      readable_sum += t.weight * t.readableRate();
    }
    report.attributes.push_back(std::move(t));
  }
  if (weights > 0) {
    report.score = follow_sum / weights;
    report.mean_ceiling = ceiling_sum / weights;
    report.mean_readable_rate = readable_sum / weights;
  }
  return report;
}

FaceReportData loadFaceReportData(const fs::path& probe_dir, const fs::path& eval_dir, int resolution, int channels,
                                  const std::vector<std::string>& attributes) {
  FaceReportData d;
  d.probe_table = readFaceAttributes(probe_dir, attributes);
  d.eval_table = readFaceAttributes(eval_dir, attributes, 8, &d.probe_table);
  for (const char* attr : {"glasses", "facial_hair"}) {
    if (std::find(attributes.begin(), attributes.end(), attr) == attributes.end()) continue;
    collapseToPresence(d.probe_table, attr);
    collapseToPresence(d.eval_table, attr);
  }
  d.probe_images = loadFaceImages(d.probe_table, resolution, channels);
  d.eval_images = loadFaceImages(d.eval_table, resolution, channels);
  return d;
}

nlohmann::json faceReport(Automodulator& model, const FaceReportData& data, const FaceReportOptions& o) {
  const auto& names = data.eval_table.names;
  const auto& eval_table = data.eval_table;
  if (o.log) o.log("training attribute probes on " + std::to_string(data.probe_images.size(0)) + " renders");
  auto probe = trainAttributeProbe(data.probe_images, data.probe_table,
                                   ProbeTrainOptions{.epochs = o.epochs, .seed = o.seed, .balanced = {"glasses", "facial_hair"}});

  nlohmann::json report;
  report["resolution"] = model.resolution();
  report["probe_faces"] = data.probe_table.size();
  report["eval_faces"] = eval_table.size();
  const auto clean = probeAccuracy(probe, data.eval_images, eval_table);
  const auto balanced = probeBalancedAccuracy(probe, data.eval_images, eval_table);
  for (size_t a = 0; a < names.size(); ++a) {
    report["probe_accuracy_on_renders"][names[a]] = clean[a];
    report["probe_balanced_accuracy_on_renders"][names[a]] = balanced[a];
    const auto majority = torch::bincount(eval_table.labelTensor(static_cast<int>(a))).max().item<int64_t>();
    report["majority_class_rate"][names[a]] = double(majority) / double(eval_table.size());
  }
  // The held-out renders' codes: the encoder's, or refined from them.
  AutomodulatorEvalModel eval_model(model);
  const auto real = data.eval_images.to(torch::kFloat32).div(127.5).sub(1.0);
  const auto z = encodeInChunks(eval_model, real);
  auto codes = LatentPlan::uniform(z, model.numBlocks());
  auto reconstruction = [&](const LatentPlan& plan) {
    auto recon = decodeInChunks(eval_model, plan);
    return nlohmann::json{{"psnr_db", psnr(recon, real)}, {"ssim", ssim(recon, real)}};
  };
  if (o.refine.enabled()) {
    if (o.log) o.log("refining the codes of " + std::to_string(z.size(0)) + " renders (" +
                     std::to_string(o.refine.steps) + " steps)");
    const auto start = std::chrono::steady_clock::now();
    codes = refineInChunks(eval_model, real, z, o.refine, o.refine_progress);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    report["refine"] = {{"options", o.refine.toJson()},
                        {"encoder_reconstruction", reconstruction(LatentPlan::uniform(z, model.numBlocks()))},
                        {"seconds", seconds},
                        {"seconds_per_image", seconds / double(std::max<int64_t>(1, z.size(0)))}};
  }
  report["reconstruction"] = reconstruction(codes);
  if (o.log) o.log("attribute transfer in scale mixes");
  report["attribute_transfer"] =
      measureAttributeTransfer(eval_model, probe, data.eval_images, eval_table,
                               AttributeTransferOptions{.pairs = o.pairs, .seed = o.seed}, &codes)
          .toJson();

  // Few-exemplar attribute vectors: glasses and facial hair (any style vs none), each restricted to
  // each scale and to all blocks.
  if (o.log) o.log("attribute edits");
  report["attribute_edits"] = nlohmann::json::array();
  auto scales = namedRanges(BlockLayout::of(model));
  scales.emplace_back("all", BlockRange{0, model.numBlocks() - 1});
  for (const std::string attr : {"glasses", "facial_hair"}) {
    if (std::find(names.begin(), names.end(), attr) == names.end()) continue;
    // Present = any style (every class but "none").
    const auto positive = presentClasses(eval_table, eval_table.index(attr));
    for (const auto& [scale, range] : scales) {
      std::vector<int> blocks;
      for (int b = range.first; b <= range.last; ++b) blocks.push_back(b);
      for (double strength : o.strengths) {
        try {
          auto r = attributeEditReport(model, probe, data.eval_images, eval_table, attr, positive, o.exemplars, blocks,
                                       strength, o.seed, o.refine.enabled() ? &codes : nullptr);
          r["scale"] = scale;
          report["attribute_edits"].push_back(r);
        } catch (const Error& e) {
          report["attribute_edits"].push_back(
              {{"attribute", attr}, {"scale", scale}, {"strength", strength}, {"error", e.what()}});
        }
      }
    }
  }
  // Attributes the probe reads (balanced accuracy on renders ≥ 0.5; nose or mouth shape is near
  // chance): the change rate over these alone is not inflated by a probe's guessing.
  std::vector<std::string> readable;
  for (size_t a = 0; a < names.size(); ++a)
    if (balanced[a] >= 0.5) readable.push_back(names[a]);
  report["readable_attributes"] = readable;
  for (auto& e : report["attribute_edits"]) {
    if (!e.contains("other_attribute_change_rate")) continue;
    double sum = 0;
    int count = 0;
    for (auto& [name, rate] : e["other_attribute_change_rate"].items())
      if (std::find(readable.begin(), readable.end(), name) != readable.end()) sum += rate.get<double>(), ++count;
    e["readable_other_attribute_change_rate"] = count > 0 ? sum / count : 0.0;
  }
  return report;
}

}  // namespace automod
