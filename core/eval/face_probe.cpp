#include "core/eval/face_probe.h"

#include <torch/nn/functional.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adam.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <random>

#include "core/io/image.h"
#include "core/model/layers.h"
#include "core/util/error.h"

namespace automod {
namespace F = torch::nn::functional;
namespace fs = std::filesystem;

namespace {

constexpr int kProbeResolution = 32;

std::string valueText(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

torch::Tensor toProbeInput(const torch::Tensor& images) {
  auto x = images.scalar_type() == torch::kUInt8 ? images.to(torch::kFloat32).div(127.5).sub(1.0) : images;
  if (x.size(2) != kProbeResolution) {
    auto opts = F::InterpolateFuncOptions().size(std::vector<int64_t>{kProbeResolution, kProbeResolution});
    if (x.size(2) > kProbeResolution) opts.mode(torch::kArea);
    else opts.mode(torch::kBilinear).align_corners(false);
    x = F::interpolate(x, opts);
  }
  return x;
}

// Decodes a plan in chunks on the model's EMA decoder.
torch::Tensor decodeChunks(Automodulator& model, const LatentPlan& plan) {
  std::vector<torch::Tensor> out;
  const int64_t n = plan.batch();
  for (int64_t i = 0; i < n; i += 32) out.push_back(model.decode(plan.narrow(i, std::min<int64_t>(32, n - i))).cpu());
  return torch::cat(out);
}

torch::Tensor encodeChunks(Automodulator& model, const torch::Tensor& images_u8) {
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < images_u8.size(0); i += 32) {
    auto x = images_u8.narrow(0, i, std::min<int64_t>(32, images_u8.size(0) - i));
    out.push_back(model.encode(x.to(torch::kFloat32).div(127.5).sub(1.0)).cpu());
  }
  return torch::cat(out);
}

}  // namespace

int FaceAttributeTable::index(const std::string& name) const {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<int>(i);
  throw Error("no face attribute '" + name + "'");
}

torch::Tensor FaceAttributeTable::labelTensor(int a) const { return torch::tensor(labels.at(a), torch::kInt64); }

std::vector<std::string> defaultProbeAttributes() {
  return {"gender", "head", "hair", "hair_color", "skin_color", "eye", "eyebrow",
          "nose", "mouth", "glasses", "facial_hair", "accessories"};
}

FaceAttributeTable readFaceAttributes(const fs::path& dir, const std::vector<std::string>& names, int max_classes,
                                      const FaceAttributeTable* classes_from) {
  const auto path = dir / "attributes.jsonl";
  std::ifstream in(path);
  if (!in) throw Error("cannot read " + path.string() + ": not a synthetic-face folder (automod make-faces)");
  std::vector<std::vector<std::string>> values(names.size());
  FaceAttributeTable t;
  t.names = names;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
      throw Error(path.string() + ":" + std::to_string(lineno) + ": not JSON");
    }
    t.files.push_back(dir / j.value("file", std::string()));
    for (size_t a = 0; a < names.size(); ++a) {
      if (!j.contains(names[a]))
        throw Error(path.string() + ":" + std::to_string(lineno) + ": no attribute '" + names[a] + "'");
      values[a].push_back(valueText(j[names[a]]));
    }
  }
  if (t.files.empty()) throw Error(path.string() + " lists no faces");
  for (size_t a = 0; a < names.size(); ++a) {
    std::vector<std::string> classes;
    if (classes_from) {
      classes = classes_from->classes.at(classes_from->index(names[a]));
    } else {
      std::map<std::string, int64_t> counts;
      for (auto& v : values[a]) ++counts[v];
      std::vector<std::pair<int64_t, std::string>> order;
      for (auto& [v, c] : counts) order.emplace_back(-c, v);
      std::sort(order.begin(), order.end());
      const bool overflow = static_cast<int>(order.size()) > max_classes;
      for (size_t k = 0; k < order.size() && static_cast<int>(classes.size()) < max_classes - (overflow ? 1 : 0); ++k)
        classes.push_back(order[k].second);
      if (overflow) classes.push_back("other");
    }
    std::vector<int64_t> ids;
    const int64_t other = std::find(classes.begin(), classes.end(), "other") - classes.begin();
    for (auto& v : values[a]) {
      auto it = std::find(classes.begin(), classes.end(), v);
      ids.push_back(it != classes.end() ? it - classes.begin() : (other < int64_t(classes.size()) ? other : 0));
    }
    t.classes.push_back(std::move(classes));
    t.labels.push_back(std::move(ids));
  }
  return t;
}

torch::Tensor loadFaceImages(const FaceAttributeTable& table, int resolution, int channels) {
  std::vector<torch::Tensor> images;
  for (auto& f : table.files) images.push_back(centerCropResize(readImage(f, channels), resolution).permute({2, 0, 1}));
  return torch::stack(images).contiguous();
}

AttributeProbeImpl::AttributeProbeImpl(int channels, const std::vector<int64_t>& classes_per_attribute) {
  namespace nn = torch::nn;
  trunk = register_module(
      "trunk", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(channels, 32, 3).padding(1)), nn::ReLU(),
                              nn::Conv2d(nn::Conv2dOptions(32, 48, 3).stride(2).padding(1)), nn::ReLU(),
                              nn::Conv2d(nn::Conv2dOptions(48, 64, 3).stride(2).padding(1)), nn::ReLU(),
                              nn::Conv2d(nn::Conv2dOptions(64, 64, 3).stride(2).padding(1)), nn::ReLU(),
                              nn::Flatten(), nn::Linear(64 * 4 * 4, 192), nn::ReLU()));
  heads = register_module("heads", nn::ModuleList());
  for (auto k : classes_per_attribute) heads->push_back(nn::Linear(192, std::max<int64_t>(k, 2)));
}

std::vector<torch::Tensor> AttributeProbeImpl::forward(const torch::Tensor& images) {
  auto h = trunk->forward(toProbeInput(images));
  std::vector<torch::Tensor> out;
  for (size_t a = 0; a < heads->size(); ++a) out.push_back(heads[a]->as<torch::nn::Linear>()->forward(h));
  return out;
}

std::vector<torch::Tensor> AttributeProbeImpl::predict(const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  eval();
  std::vector<std::vector<torch::Tensor>> parts(heads->size());
  for (int64_t i = 0; i < images.size(0); i += 128) {
    auto logits = forward(images.narrow(0, i, std::min<int64_t>(128, images.size(0) - i)).cpu());
    for (size_t a = 0; a < logits.size(); ++a) parts[a].push_back(logits[a].argmax(1));
  }
  std::vector<torch::Tensor> out;
  for (auto& p : parts) out.push_back(torch::cat(p));
  return out;
}

AttributeProbe trainAttributeProbe(const torch::Tensor& images_u8, const FaceAttributeTable& table,
                                   const ProbeTrainOptions& o) {
  torch::manual_seed(o.seed);
  std::vector<int64_t> k;
  for (auto& c : table.classes) k.push_back(static_cast<int64_t>(c.size()));
  AttributeProbe probe(static_cast<int>(images_u8.size(1)), k);
  probe->train();
  torch::optim::Adam opt(probe->parameters(), torch::optim::AdamOptions(o.lr));
  auto x_all = toProbeInput(images_u8);
  std::vector<torch::Tensor> y_all;
  for (size_t a = 0; a < table.names.size(); ++a) y_all.push_back(table.labelTensor(static_cast<int>(a)));
  const int64_t n = x_all.size(0);
  std::vector<torch::Tensor> weights;
  for (size_t a = 0; a < table.names.size(); ++a) {
    auto counts = torch::bincount(y_all[a], {}, std::max<int64_t>(k[a], 2)).to(torch::kFloat32).clamp_min(1);
    const bool balance = std::find(o.balanced.begin(), o.balanced.end(), table.names[a]) != o.balanced.end();
    weights.push_back(balance ? (counts.mean() / counts).clamp(0.2, 5.0) : torch::ones_like(counts));
  }
  for (int e = 0; e < o.epochs; ++e) {
    auto perm = torch::randperm(n, torch::kInt64);
    for (int64_t i = 0; i + 1 < n; i += o.batch) {
      auto idx = perm.narrow(0, i, std::min<int64_t>(o.batch, n - i));
      auto x = x_all.index_select(0, idx);
      // Blur a fraction of the batch so that the probe also reads softer decoded images.
      const int64_t nb = static_cast<int64_t>(x.size(0) * o.blur_fraction);
      if (nb > 0) {
        const int64_t f = (e + i / o.batch) % 2 == 0 ? 2 : 4;
        auto part = x.narrow(0, 0, nb);
        auto small = F::avg_pool2d(part, F::AvgPool2dFuncOptions(f));
        auto up = F::interpolate(small, F::InterpolateFuncOptions()
                                            .size(std::vector<int64_t>{x.size(2), x.size(3)})
                                            .mode(torch::kBilinear)
                                            .align_corners(false));
        x = torch::cat({up, x.narrow(0, nb, x.size(0) - nb)});
      }
      auto logits = probe->forward(x);
      auto loss = torch::zeros({});
      for (size_t a = 0; a < logits.size(); ++a) loss = loss + F::cross_entropy(logits[a], y_all[a].index_select(0, idx),
                                         F::CrossEntropyFuncOptions().weight(weights[a]));
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
  }
  probe->eval();
  return probe;
}

std::vector<double> probeAccuracy(AttributeProbe& probe, const torch::Tensor& images, const FaceAttributeTable& table) {
  auto pred = probe->predict(images);
  std::vector<double> acc;
  for (size_t a = 0; a < pred.size(); ++a)
    acc.push_back(pred[a].eq(table.labelTensor(static_cast<int>(a))).to(torch::kFloat64).mean().item<double>());
  return acc;
}

double balancedAccuracy(const torch::Tensor& predicted, const torch::Tensor& labels, int64_t classes) {
  double sum = 0;
  int present = 0;
  for (int64_t c = 0; c < classes; ++c) {
    auto in_class = labels.eq(c);
    const auto count = in_class.sum().item<int64_t>();
    if (count == 0) continue;
    sum += predicted.eq(c).logical_and(in_class).sum().item<double>() / double(count);
    ++present;
  }
  return present > 0 ? sum / present : 0.0;
}

std::vector<double> probeBalancedAccuracy(AttributeProbe& probe, const torch::Tensor& images,
                                          const FaceAttributeTable& table) {
  auto pred = probe->predict(images);
  std::vector<double> out;
  for (size_t a = 0; a < pred.size(); ++a)
    out.push_back(balancedAccuracy(pred[a], table.labelTensor(static_cast<int>(a)),
                                   static_cast<int64_t>(table.classes[a].size())));
  return out;
}

void collapseToPresence(FaceAttributeTable& table, const std::string& name) {
  const int a = table.index(name);
  const auto& classes = table.classes[a];
  const auto none = std::find(classes.begin(), classes.end(), "none") - classes.begin();
  if (none == static_cast<int64_t>(classes.size()))
    throw Error("attribute " + name + " has no \"none\" class to tell presence from");
  for (auto& label : table.labels[a]) label = label == none ? 0 : 1;
  table.classes[a] = {"none", "present"};
}

std::vector<int64_t> presentClasses(const FaceAttributeTable& table, int a) {
  const auto& classes = table.classes.at(a);
  if (std::find(classes.begin(), classes.end(), "none") == classes.end())
    throw Error("attribute " + table.names.at(a) + " has no \"none\" class to edit from");
  std::vector<int64_t> present;
  for (int64_t k = 0; k < static_cast<int64_t>(classes.size()); ++k)
    if (classes[k] != "none") present.push_back(k);
  return present;
}

nlohmann::json attributeEditReport(Automodulator& model, AttributeProbe& probe, const torch::Tensor& images_u8,
                                   const FaceAttributeTable& table, const std::string& name,
                                   const std::vector<int64_t>& positive_classes, int exemplars,
                                   const std::vector<int>& blocks, double strength, uint64_t seed,
                                   const LatentPlan* codes) {
  const int a = table.index(name);
  const auto& labels = table.labels[a];
  auto positive = [&](int64_t c) {
    return std::find(positive_classes.begin(), positive_classes.end(), c) != positive_classes.end();
  };
  std::vector<std::string> positive_names;
  for (auto c : positive_classes) positive_names.push_back(table.classes[a].at(c));
  std::vector<int64_t> pos, neg;
  for (int64_t i = 0; i < static_cast<int64_t>(labels.size()); ++i) (positive(labels[i]) ? pos : neg).push_back(i);
  if (static_cast<int>(pos.size()) < exemplars + 1 || static_cast<int>(neg.size()) < exemplars + 1)
    throw Error("not enough faces with and without " + name + " (" + std::to_string(pos.size()) + " with, " +
                std::to_string(neg.size()) + " without; need " + std::to_string(exemplars + 1) + " of each)");
  std::mt19937_64 rng(seed);
  std::shuffle(pos.begin(), pos.end(), rng);
  std::shuffle(neg.begin(), neg.end(), rng);
  auto pick = [&](const std::vector<int64_t>& v, size_t from, size_t count) {
    return images_u8.index_select(0, torch::tensor(std::vector<int64_t>(v.begin() + from, v.begin() + from + count)));
  };
  auto zp = encodeChunks(model, pick(pos, 0, exemplars)).mean(0);
  auto zn = encodeChunks(model, pick(neg, 0, exemplars)).mean(0);
  auto v = (zp - zn).to(model.device());
  // Targets: held-out faces without the attribute (not used as exemplars).
  std::vector<int64_t> targets(neg.begin() + exemplars, neg.end());
  const int nb = model.numBlocks();
  LatentPlan plan_edit, plan_plain;
  if (codes) {
    plan_plain = codes->indexSelect(torch::tensor(targets)).to(model.device());
  } else {
    plan_plain = LatentPlan::uniform(
        encodeChunks(model, images_u8.index_select(0, torch::tensor(targets))).to(model.device()), nb);
  }
  // The edit moves the codes of the chosen blocks; style offsets (refined codes) stay.
  plan_edit = plan_plain;
  for (int b = 0; b < nb; ++b)
    if (std::find(blocks.begin(), blocks.end(), b) != blocks.end())
      plan_edit[b] = normaliseLatent(plan_plain[b] + strength * v.unsqueeze(0));
  auto before = probe->predict(decodeChunks(model, plan_plain));
  auto after = probe->predict(decodeChunks(model, plan_edit));
  nlohmann::json r{{"attribute", name},
                   {"positive_classes", positive_names},
                   {"exemplars_each", exemplars},
                   {"strength", strength},
                   {"blocks", blocks},
                   {"faces_edited", targets.size()}};
  auto present = [&](const torch::Tensor& predicted) {
    auto m = torch::zeros_like(predicted, torch::kBool);
    for (auto c : positive_classes) m.logical_or_(predicted.eq(c));
    return m;
  };
  const auto was = present(before[a]), now = present(after[a]);
  r["target_flip_rate"] = now.logical_and(was.logical_not()).sum().item<double>() /
                          std::max<double>(1.0, was.logical_not().sum().item<double>());
  r["target_present_before"] = was.to(torch::kFloat64).mean().item<double>();
  r["target_present_after"] = now.to(torch::kFloat64).mean().item<double>();
  nlohmann::json others;
  for (size_t k = 0; k < table.names.size(); ++k) {
    if (static_cast<int>(k) == a) continue;
    others[table.names[k]] = after[k].ne(before[k]).to(torch::kFloat64).mean().item<double>();
  }
  r["other_attribute_change_rate"] = others;
  return r;
}

}  // namespace automod
