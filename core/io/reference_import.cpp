#include "core/io/reference_import.h"

#include <torch/nn/functional.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "core/util/error.h"
#include "core/io/torch_file.h"
#include "core/util/sha256.h"

namespace automod {
namespace {

std::string shapeText(at::IntArrayRef s) {
  std::ostringstream o;
  o << s;
  return o.str();
}

/// Copies the source tensors into the model by name, after checking every one: nothing is copied
/// unless all are present and of the right shape.
class Mapping {
 public:
  Mapping(const ReferenceCheckpoint& ckpt, std::string source) : ckpt_(ckpt), source_(std::move(source)) {}

  /// Our tensor `ours` ← `dict`[theirs] (reshaped to our shape when only the layout differs).
  void add(const std::string& ours, const ReferenceCheckpoint::StateDict& dict, const char* dict_name,
           const std::string& theirs, bool reshape = false) {
    const torch::Tensor* t = ckpt_.find(dict, theirs);
    if (!t)
      throw Error(source_ + " is not an automodulator checkpoint of the authors' code: " + dict_name + " has no '" +
                  theirs + "'");
    used_.insert(std::string(dict_name) + ":" + theirs);
    pending_.push_back({ours, *t, std::string(dict_name) + "['module." + theirs + "']", reshape});
  }
  /// Our tensor `ours` ← a tensor computed here (spectral-norm vectors).
  void addComputed(const std::string& ours, const torch::Tensor& t, const std::string& what) {
    pending_.push_back({ours, t, what, true});
  }
  bool used(const char* dict_name, const std::string& theirs) const {
    return used_.count(std::string(dict_name) + ":" + theirs) > 0;
  }

  void apply(Automodulator& model) {
    std::map<std::string, torch::Tensor> state;
    for (auto& [name, t] : namedState(model)) state.emplace(name, t);
    for (auto& p : pending_) {
      auto it = state.find(p.ours);
      TORCH_CHECK(it != state.end(), "the importer maps to a tensor the model does not have: ", p.ours);
      const auto& dst = it->second;
      const bool same = p.src.sizes().equals(dst.sizes());
      if (!same && !(p.reshape && p.src.numel() == dst.numel()))
        throw Error(source_ + ": " + p.what + " has shape " + shapeText(p.src.sizes()) + " where the architecture its " +
                    "other layers describe needs " + shapeText(dst.sizes()));
      if (!p.src.is_floating_point())
        throw Error(source_ + ": " + p.what + " is not a floating-point tensor");
      if (!torch::isfinite(p.src).all().item<bool>())
        throw Error(source_ + ": " + p.what + " holds NaN or infinite values; the checkpoint is damaged");
    }
    torch::NoGradGuard no_grad;
    for (auto& p : pending_) {
      auto& dst = state.at(p.ours);
      dst.copy_(p.src.reshape(dst.sizes()).to(dst.scalar_type()));
      assigned_.insert(p.ours);
    }
    for (auto& [name, t] : state) {
      // The spectral-norm v of in-graph layers is only a record; everything else must come from the file.
      const bool optional = name.size() > 2 && name.compare(name.size() - 2, 2, ".v") == 0;
      TORCH_CHECK(optional || assigned_.count(name), "the importer left ", name, " unset");
    }
  }

 private:
  struct Pending {
    std::string ours;
    torch::Tensor src;
    std::string what;
    bool reshape;
  };
  const ReferenceCheckpoint& ckpt_;
  std::string source_;
  std::vector<Pending> pending_;
  std::set<std::string> used_, assigned_;
};

/// Number of consecutive "<prefix>.k.<suffix>" entries from k = 0.
int countLayers(const ReferenceCheckpoint& ckpt, const ReferenceCheckpoint::StateDict& dict, const std::string& prefix,
                const std::string& suffix) {
  int k = 0;
  while (k < 64 && ckpt.find(dict, prefix + "." + std::to_string(k) + "." + suffix)) ++k;
  return k;
}

const torch::Tensor& need(const ReferenceCheckpoint& ckpt, const ReferenceCheckpoint::StateDict& dict,
                          const char* dict_name, const std::string& name, int64_t dims, const std::string& source) {
  const torch::Tensor* t = ckpt.find(dict, name);
  if (!t)
    throw Error(source + " is not an automodulator checkpoint of the authors' code: " + dict_name + " has no '" + name +
                "'");
  if (t->dim() != dims)
    throw Error(source + ": " + dict_name + "['module." + name + "'] has shape " + shapeText(t->sizes()) + ", expected " +
                std::to_string(dims) + " dimensions");
  return *t;
}

void mapDecoder(Mapping& map, const ReferenceCheckpoint& ckpt, const ReferenceCheckpoint::StateDict& dict,
                const char* dict_name, const std::string& prefix, int blocks) {
  for (const auto& n : referenceParameterNames(blocks, 0))
    if (n.network == ReferenceName::Decoder) {
      // The AdaIN linears also appear inside progression (shared tensors); either name will do.
      const bool alt = !n.alternative.empty() && !ckpt.find(dict, n.theirs);
      map.add(prefix + n.ours, dict, dict_name, alt ? n.alternative : n.theirs, n.reshape);
    }
}

/// v = n(Wᵀu), the authors' first half-iteration, kept as the record of the last iteration.
torch::Tensor firstV(const torch::Tensor& weight_orig, const torch::Tensor& u) {
  auto w = weight_orig.reshape({weight_orig.size(0), -1}).to(torch::kFloat32);
  auto v = torch::mv(w.t(), u.reshape({-1}).to(torch::kFloat32));
  return v / v.norm();
}

void mapEncoder(Mapping& map, const ReferenceCheckpoint& ckpt, const std::string& source, int stages, int ref_blocks) {
  const auto& d = ckpt.encoder;
  if (static_cast<int>(ckpt.snu.size()) != 2 * ref_blocks)
    throw Error(source + ": SNU holds " + std::to_string(ckpt.snu.size()) + " spectral-norm vectors where the encoder's " +
                std::to_string(ref_blocks) + " blocks need " + std::to_string(2 * ref_blocks));
  for (const auto& n : referenceParameterNames(stages, ref_blocks)) {
    if (n.network != ReferenceName::Encoder) continue;
    map.add("encoder." + n.ours, d, "D_state_dict", n.theirs);
    if (n.snu < 0) continue;
    // The layer's spectral-norm vector: u from SNU, v = n(Wᵀu) as a record.
    const std::string layer = n.ours.substr(0, n.ours.size() - std::string("weight_orig").size());
    const auto& u = ckpt.snu[n.snu];
    const auto& w = need(ckpt, d, "D_state_dict", n.theirs, 4, source);
    if (u.numel() != w.size(0))
      throw Error(source + ": SNU[" + std::to_string(n.snu) + "] has " + std::to_string(u.numel()) +
                  " elements but its layer has " + std::to_string(w.size(0)) + " outputs");
    map.addComputed("encoder." + layer + "u", u.reshape({-1}), "SNU[" + std::to_string(n.snu) + "]");
    map.addComputed("encoder." + layer + "v", firstV(w, u), "v of SNU[" + std::to_string(n.snu) + "]");
  }
}

const ReleasedModel* recognise(const ReferenceCheckpoint& ckpt, const std::string& arch) {
  for (auto& m : releasedModels())
    if (m.iteration == ckpt.iteration && m.architecture == arch && (4 << ckpt.phase) == m.resolution) return &m;
  return nullptr;
}

}  // namespace

std::vector<ReferenceName> referenceParameterNames(int stages, int reference_blocks) {
  std::vector<ReferenceName> out;
  auto add = [&](ReferenceName::Network net, std::string ours, std::string theirs, std::string alt = {},
                 bool reshape = false, int snu = -1) {
    out.push_back({net, std::move(ours), std::move(theirs), std::move(alt), reshape, snu});
  };
  for (int b = 0; b < stages; ++b) {
    const std::string ours = "blocks." + std::to_string(b) + ".", bs = std::to_string(b);
    for (int layer = 1; layer <= (b == 0 ? 1 : 2); ++layer) {
      // Block 0's only convolution is progression.0.conv.1; later blocks have conv.0.0 (after the
      // upsampling) and conv.1.
      const std::string conv = b == 0 ? "progression.0.conv.1.conv"
                                      : "progression." + bs + (layer == 1 ? ".conv.0.0.conv" : ".conv.1.conv");
      const std::string l = std::to_string(layer);
      add(ReferenceName::Decoder, ours + "conv" + l + ".weight", conv + ".weight_orig");
      add(ReferenceName::Decoder, ours + "conv" + l + ".bias", conv + ".bias");
      add(ReferenceName::Decoder, ours + "conv" + l + ".gain", conv + ".weight_gain");
      // adanorm_blocks is in creation order: block 0 has one AdaIN, the others two.
      const std::string adanorm = "adanorm_blocks." + std::to_string(b == 0 ? 0 : 2 * b - 2 + layer) + ".mod";
      const std::string inside = b == 0 ? "progression.0.conv.3.mod"
                                        : "progression." + bs + (layer == 1 ? ".conv.0.3.mod" : ".conv.3.mod");
      add(ReferenceName::Decoder, ours + "adain" + l + ".style.weight", adanorm + ".weight", inside + ".weight");
      add(ReferenceName::Decoder, ours + "adain" + l + ".style.bias", adanorm + ".bias", inside + ".bias");
      if (b > 0)
        add(ReferenceName::Decoder, ours + "noise" + l + ".weight",
            "noise." + bs + "." + std::to_string(layer - 1) + ".noise_scale", {}, /*reshape=*/true);
    }
    add(ReferenceName::Decoder, "to_rgb." + bs + ".weight", "to_rgb." + bs + ".weight");
    add(ReferenceName::Decoder, "to_rgb." + bs + ".bias", "to_rgb." + bs + ".bias");
  }
  if (reference_blocks <= 0) return out;
  for (int b = 0; b < stages; ++b) {
    const int k = reference_blocks - 1 - b;  // the authors number encoder blocks from the largest resolution
    const std::string theirs = "progression." + std::to_string(k) + ".conv.";
    const std::string ours1 = b == 0 ? "final_conv." : "blocks." + std::to_string(b) + ".conv1.";
    const std::string ours2 = b == 0 ? "final_out." : "blocks." + std::to_string(b) + ".conv2.";
    add(ReferenceName::Encoder, ours1 + "weight_orig", theirs + "0.conv.weight_orig", {}, false, 2 * k);
    add(ReferenceName::Encoder, ours1 + "bias", theirs + "0.conv.bias");
    add(ReferenceName::Encoder, ours2 + "weight_orig", theirs + "2.conv.weight_orig", {}, false, 2 * k + 1);
    add(ReferenceName::Encoder, ours2 + "bias", theirs + "2.conv.bias");
    add(ReferenceName::Encoder, "from_rgb." + std::to_string(b) + ".weight", "from_rgb." + std::to_string(k) + ".weight");
    add(ReferenceName::Encoder, "from_rgb." + std::to_string(b) + ".bias", "from_rgb." + std::to_string(k) + ".bias");
  }
  return out;
}

const torch::Tensor* ReferenceCheckpoint::find(const StateDict& dict, const std::string& name) const {
  for (auto& [k, t] : dict)
    if (k == name) return &t;
  return nullptr;
}

const std::vector<ReleasedModel>& releasedModels() {
  // The authors' hubconf.py (files <iteration>_state.pth in Zenodo record 4298894).
  static const std::vector<ReleasedModel> models{
      {"ffhq512", 512, "default", 42420000, "ffhq"},
      {"ffhq256", 256, "default", 34740000, "ffhq"},
      {"celebahq256", 256, "small", 31877148, "celebahq"},
      {"lsuncars256", 256, "default", 32057140, "none"},
      {"lsunbedrooms256", 256, "default", 27574284, "none"},
  };
  return models;
}

std::string releasedModelFile(const ReleasedModel& model) { return std::to_string(model.iteration) + "_state.pth"; }

std::string releasedModelUrl(const ReleasedModel& model) {
  return "https://zenodo.org/record/4298894/files/" + releasedModelFile(model);
}

ReferenceArchitecture inferReferenceArchitecture(const ReferenceCheckpoint& ckpt, const std::string& source) {
  const auto& g = ckpt.ema_decoder;
  ReferenceArchitecture a;
  a.reference_blocks = countLayers(ckpt, g, "to_rgb", "weight");
  if (a.reference_blocks == 0)
    throw Error(source + " is not an automodulator checkpoint of the authors' code: G_running_state_dict has no "
                         "to_rgb layers");
  const int encoder_blocks = countLayers(ckpt, ckpt.encoder, "from_rgb", "weight");
  if (encoder_blocks != a.reference_blocks)
    throw Error(source + ": the encoder has " + std::to_string(encoder_blocks) + " fromRGB layers but the decoder " +
                std::to_string(a.reference_blocks) + " toRGB layers");
  if (ckpt.phase < 0 || ckpt.phase >= a.reference_blocks)
    throw Error(source + ": phase " + std::to_string(ckpt.phase) + " is outside the networks' " +
                std::to_string(a.reference_blocks) + " blocks");
  const bool adanorm = ckpt.find(g, "adanorm_blocks.0.mod.weight") != nullptr;
  const auto& style = need(ckpt, g, "G_running_state_dict",
                           adanorm ? "adanorm_blocks.0.mod.weight" : "progression.0.conv.3.mod.weight", 2, source);
  const int latent = static_cast<int>(style.size(1));
  const int resolution = 4 << ckpt.phase;
  const int rgb = static_cast<int>(need(ckpt, g, "G_running_state_dict", "to_rgb.0.weight", 4, source).size(0));
  if (rgb != 1 && rgb != 3) throw Error(source + ": toRGB makes " + std::to_string(rgb) + " channels (1 or 3 expected)");

  std::vector<int> widths, encoder_widths;
  for (int b = 0; b <= ckpt.phase; ++b) {
    widths.push_back(static_cast<int>(
        need(ckpt, g, "G_running_state_dict", "to_rgb." + std::to_string(b) + ".weight", 4, source).size(1)));
    encoder_widths.push_back(static_cast<int>(need(ckpt, ckpt.encoder, "D_state_dict",
                                                   "from_rgb." + std::to_string(a.reference_blocks - 1 - b) + ".weight",
                                                   4, source)
                                                  .size(0)));
  }
  a.config = ModelConfig::reference(resolution, latent, /*small=*/false, rgb);
  const auto small = ModelConfig::reference(resolution, latent, /*small=*/true, rgb);
  if (widths == a.config.widths && encoder_widths == a.config.encoder_widths) {
    a.name = "default";
  } else if (widths == small.widths && encoder_widths == small.encoder_widths) {
    a.name = "small";
    a.config = small;
  } else {
    a.name = "custom";
    a.config.widths = widths;
    a.config.encoder_widths = encoder_widths;
    a.config.width_table = "custom";
  }
  try {
    a.config.validate();
  } catch (const Error& e) {
    throw Error(source + ": the layer shapes do not describe a usable model: " + e.what());
  }
  return a;
}

ReferenceImport importReference(const ReferenceCheckpoint& ckpt, const std::string& source, const std::string& sha256,
                                const ReferenceImportOptions& options) {
  const auto arch = inferReferenceArchitecture(ckpt, source);
  const int stages = arch.config.numBlocks();
  ReferenceImport out;
  auto model = std::make_unique<Automodulator>(arch.config);

  Mapping map(ckpt, source);
  mapDecoder(map, ckpt, ckpt.ema_decoder, "G_running_state_dict", "ema.", stages);
  mapDecoder(map, ckpt, ckpt.decoder, "G_state_dict", "decoder.", stages);
  mapEncoder(map, ckpt, source, stages, arch.reference_blocks);
  map.apply(*model);
  // Mid-fade-in, the top block is not fully trained: use the one below, as our own checkpoints do.
  model->setStage(ckpt.alpha < 1.0 && stages > 1 ? stages - 2 : stages - 1);
  model->ema->setNoise(false);
  model->decoder->setNoise(false);

  const ReleasedModel* released = recognise(ckpt, arch.name);
  std::string alignment = options.alignment;
  if (alignment.empty()) alignment = released ? released->alignment : "ffhq";
  if (alignment != "ffhq" && alignment != "celebahq" && alignment != "none")
    throw Error("unknown alignment '" + alignment + "': use ffhq, celebahq or none");

  // What the file holds that the model does not.
  std::vector<std::string> unused;
  if (ckpt.find(ckpt.ema_decoder, "z_preprocess.0.0.weight_orig"))
    unused.push_back("z_preprocess (the decoder's latent MLP, used only with the authors' --stylefc option)");
  if (ckpt.find(ckpt.ema_decoder, "label_embed.weight")) unused.push_back("label_embed (unused by the authors' code)");
  if (ckpt.find(ckpt.ema_decoder, "noise.0.0.noise_scale"))
    unused.push_back("noise.0 (block 0 draws no layer noise in the authors' forward pass)");
  if (arch.reference_blocks > stages)
    unused.push_back("decoder and encoder blocks above " + std::to_string(4 << (stages - 1)) + " px (" +
                     std::to_string(arch.reference_blocks - stages) + " of the " +
                     std::to_string(arch.reference_blocks) + " the authors' networks are built with; untrained at phase " +
                     std::to_string(ckpt.phase) + ")");
  if (ckpt.alpha < 1.0)
    unused.push_back("the fading-in top block is kept for training but not used for editing (saved at alpha " +
                     std::to_string(ckpt.alpha) + ")");
  unused.push_back("the optimiser and robust-loss states (import with --training-state to fine-tune)");
  out.not_carried = unused;

  std::string file = source;
  if (options.file_name_only) file = std::filesystem::path(source).filename().string();
  out.provenance = {{"source", "authors' checkpoint (AaltoVision/automodulator)"},
                    {"file", file},
                    {"sha256", sha256},
                    {"format", ckpt.format},
                    {"saved_on", ckpt.location},
                    {"iteration", ckpt.iteration},
                    {"phase", ckpt.phase},
                    {"alpha", ckpt.alpha},
                    {"architecture", arch.name},
                    {"latent_dim", arch.config.latent_dim},
                    {"not_carried", unused}};
  if (released) out.provenance["released_model"] = released->name;
  model->metadata["provenance"] = out.provenance;
  model->metadata["alignment"] = alignment;
  model->metadata["images_seen"] = ckpt.iteration;
  model->metadata["imported"] = true;
  out.model = std::move(model);
  return out;
}

}  // namespace automod

// ---------------------------------------------------------------------------------------------
// Reading the file

namespace automod {
namespace {

using pickle::ValuePtr;

ReferenceCheckpoint::StateDict stateDict(const pickle::Value& root, const char* key, const std::string& source) {
  auto v = root.find(key);
  if (!v) throw Error(source + " is not an automodulator checkpoint of the authors' code: it has no '" + key + "'");
  if (!v->isDict()) throw Error(source + ": '" + key + "' is a " + v->describe() + ", not a state dict");
  ReferenceCheckpoint::StateDict out;
  for (auto& [k, t] : v->items()) {
    if (!k->isString()) throw Error(source + ": '" + key + "' has a non-string key (" + k->describe() + ")");
    if (!t->isTensor())
      throw Error(source + ": " + key + "['" + k->asString() + "'] is a " + t->describe() + ", not a tensor");
    std::string name = k->asString();
    if (name.rfind("module.", 0) == 0) name = name.substr(7);  // DataParallel's prefix
    out.emplace_back(std::move(name), t->tensor());
  }
  return out;
}

ReferenceCheckpoint::Optimizer optimizerState(const pickle::Value& root, const char* key, const std::string& source) {
  ReferenceCheckpoint::Optimizer o;
  auto v = root.find(key);
  if (!v || !v->isDict()) return o;
  auto groups = v->find("param_groups");
  auto state = v->find("state");
  if (!groups || !groups->isList() || groups->size() != 1 || !state || !state->isDict())
    throw Error(source + ": '" + key + "' is not the state of one Adam optimiser with one parameter group");
  const auto& group = *groups->at(0);
  o.present = true;
  o.lr = group.at("lr")->asDouble();
  o.params = static_cast<int64_t>(group.at("params")->size());
  for (auto& [k, s] : state->items()) {
    ReferenceCheckpoint::AdamEntry e;
    const auto& step = s->at("step");
    e.step = step->isTensor() ? step->tensor().item<double>() : step->asInt();
    e.exp_avg = s->at("exp_avg")->tensor();
    e.exp_avg_sq = s->at("exp_avg_sq")->tensor();
    o.state[k->asInt()] = e;
  }
  return o;
}

}  // namespace

ReferenceCheckpoint readReferenceCheckpoint(const std::filesystem::path& path) {
  const std::string source = path.filename().string();
  auto file = readTorchFile(path);
  const auto& root = *file.root;
  if (!root.isDict())
    throw Error(source + " is a PyTorch file but not a checkpoint of the authors' code: it holds a " + root.describe());
  if (!root.contains("G_running_state_dict") && !root.contains("D_state_dict")) {
    std::string keys;
    for (auto& k : root.keys()) keys += (keys.empty() ? "" : ", ") + k;
    throw Error(source + " is a PyTorch file but not a checkpoint of the authors' code (it has " +
                (keys.empty() ? std::string("no named entries") : "'" + keys.substr(0, 200) + "'") +
                ", not G_running_state_dict and D_state_dict)");
  }
  ReferenceCheckpoint c;
  c.ema_decoder = stateDict(root, "G_running_state_dict", source);
  c.decoder = stateDict(root, "G_state_dict", source);
  c.encoder = stateDict(root, "D_state_dict", source);
  try {
    c.iteration = root.at("iteration")->asInt();
    c.phase = static_cast<int>(root.at("phase")->asInt());
    c.alpha = root.at("alpha")->asDouble();
    const auto& snu = root.at("SNU");
    if (!snu->isList() && !snu->isTuple()) throw Error("SNU is a " + snu->describe() + ", not a list");
    for (auto& u : snu->elements()) c.snu.push_back(u->tensor());
    for (int k = 0; root.contains("adaptive_loss_" + std::to_string(k)); ++k) {
      auto entry = root.at("adaptive_loss_" + std::to_string(k));
      const auto& dict = entry->isTuple() ? entry->at(size_t(0)) : entry;
      c.robust.emplace_back(dict->at("latent_alpha")->tensor(), dict->at("latent_scale")->tensor());
    }
  } catch (const Error& e) {
    throw Error(source + " is not a complete checkpoint of the authors' code: " + e.what());
  }
  c.optimizer_encoder = optimizerState(root, "optimizerD", source);
  c.optimizer_decoder = optimizerState(root, "optimizerG", source);
  c.optimizer_style = optimizerState(root, "optimizerA", source);
  c.format = file.format;
  c.location = file.locations.empty() ? "cpu" : file.locations.front();
  return c;
}

ReferenceImport importReferenceFile(const std::filesystem::path& path, const ReferenceImportOptions& options) {
  auto ckpt = readReferenceCheckpoint(path);
  return importReference(ckpt, path.string(), sha256File(path), options);
}

}  // namespace automod
