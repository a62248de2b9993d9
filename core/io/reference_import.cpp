#include "core/io/reference_import.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/functional.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <future>
#include <set>
#include <sstream>

#include "core/util/error.h"
#include "core/util/finite.h"
#include "core/io/torch_file.h"
#include "core/util/sha256.h"

namespace automod {
namespace {

std::string shapeText(at::IntArrayRef s) {
  std::ostringstream o;
  o << s;
  return o.str();
}

std::string number(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

/// Copies the source tensors into the model by name, after checking every one: nothing is read
/// unless all are present and of the right shape. A streamed checkpoint's tensors are read straight
/// into the model's (one read, no copy kept); a tensor holding NaN or infinities stops the import.
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
  /// Our tensor `ours` ← `make`(the model's tensors once every other one is set).
  void addDerived(const std::string& ours, std::function<torch::Tensor(const std::map<std::string, torch::Tensor>&)> make) {
    derived_.push_back({ours, std::move(make)});
  }
  /// Our tensor `ours` ← `t` (same elements, any layout), named `what` in messages.
  void add(const std::string& ours, const torch::Tensor& t, const std::string& what) {
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
    }
    torch::NoGradGuard no_grad;
    for (auto& p : pending_) {
      auto& dst = state.at(p.ours);
      // Where the file allows, the model's tensor becomes a view of the file's mapping (no copy: an
      // import then costs about one pass over the file); otherwise it is read into.
      const torch::Tensor view = ckpt_.view(p.src);
      const bool adopt = view.defined() && view.scalar_type() == dst.scalar_type() && view.is_contiguous() &&
                         view.numel() == dst.numel();
      const torch::Tensor& got = adopt ? view : dst;
      if (!adopt) ckpt_.readInto(p.src, dst);
      if (!allFinite(got))
        throw Error(source_ + ": " + p.what + " holds NaN or infinite values; the checkpoint is damaged");
      if (adopt) dst.set_data(view.view(dst.sizes()));
      assigned_.insert(p.ours);
    }
    for (auto& d : derived_) {
      auto& dst = state.at(d.ours);
      dst.copy_(d.make(state).reshape(dst.sizes()));
      assigned_.insert(d.ours);
    }
    // The model was not initialised: every tensor must have come from the file (or from its u and W).
    for (auto& [name, t] : state) TORCH_CHECK(assigned_.count(name), "the importer left ", name, " unset");
  }

 private:
  struct Pending {
    std::string ours;
    torch::Tensor src;
    std::string what;
    bool reshape;
  };
  struct Derived {
    std::string ours;
    std::function<torch::Tensor(const std::map<std::string, torch::Tensor>&)> make;
  };
  const ReferenceCheckpoint& ckpt_;
  std::string source_;
  std::vector<Pending> pending_;
  std::vector<Derived> derived_;
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

void mapEncoder(Mapping& map, const ReferenceCheckpoint& ckpt, const std::string& source, int stages, int ref_blocks,
                std::vector<std::string>* not_carried) {
  const auto& d = ckpt.encoder;
  // The authors' Session._load hands SNU[i] to the i-th spectral-norm layer in creation order and
  // ignores the rest (more are saved when a process built more than one encoder), so do we.
  const int needed = 2 * ref_blocks;
  if (static_cast<int>(ckpt.snu.size()) < needed)
    throw Error(source + ": SNU holds " + std::to_string(ckpt.snu.size()) + " spectral-norm vectors where the encoder's " +
                std::to_string(ref_blocks) + " blocks need " + std::to_string(needed));
  if (static_cast<int>(ckpt.snu.size()) > needed)
    not_carried->push_back("spectral-norm vectors " + std::to_string(needed) + "-" + std::to_string(ckpt.snu.size() - 1) +
                           " of SNU: the encoder's " + std::to_string(ref_blocks) + " blocks use the first " +
                           std::to_string(needed) + ", as the authors' Session._load does");
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
    map.add("encoder." + layer + "u", u, "SNU[" + std::to_string(n.snu) + "]");
    // v from the model's copy of the weight, once read.
    const std::string weight = "encoder." + n.ours, u_name = "encoder." + layer + "u";
    map.addDerived("encoder." + layer + "v", [weight, u_name](const std::map<std::string, torch::Tensor>& state) {
      return firstV(state.at(weight), state.at(u_name));
    });
  }
}

const ReleasedModel* recognise(const ReferenceCheckpoint& ckpt, const std::string& arch) {
  for (auto& m : releasedModels())
    if (m.iteration == ckpt.iteration && m.architecture == arch && (4 << ckpt.phase) == m.resolution) return &m;
  return nullptr;
}

/// Refuses a checkpoint whose decoder our networks cannot compute exactly, saying why.
void checkLayout(const ReferenceCheckpoint& ckpt, const std::string& source) {
  for (const auto* dict : {&ckpt.ema_decoder, &ckpt.decoder}) {
    for (const auto& [name, t] : *dict) {
      if (name.rfind("supportProgression.", 0) == 0 || name.rfind("supportTorgbBlock8.", 0) == 0)
        throw Error(source + " was trained with the authors' flip-invariance support block (--flip_invariance_layer: "
                             "'" + name + "'): its extra block blurs and shifts the decoder's step numbering, unlike "
                             "this program's extra 8x8 block, so it cannot be imported exactly");
    }
    // With --upsampling bilinear, a block's first sequential has no blur layer: its AdaIN is at index
    // 2 instead of 3, and the authors' forward pass upsamples bilinearly.
    if (ckpt.find(*dict, "progression.1.conv.0.2.mod.weight") && !ckpt.find(*dict, "progression.1.conv.0.3.mod.weight"))
      throw Error(source + " was trained with bilinear upsampling (the authors' --upsampling bilinear: no blur layer in "
                           "its decoder blocks); this program's decoder upsamples by nearest neighbour and blurs, so "
                           "it cannot be imported exactly");
  }
}

/// z_preprocess (the decoder's latent mapping) runs only with the authors' --stylefc, which the
/// file does not record. Untrained it keeps its initial bias 0 and gain 0.01 (no gradient reaches it,
/// and the EMA copy stays equal); anything else may mean it was used.
std::string stylefcWarning(const ReferenceCheckpoint& ckpt) {
  const torch::Tensor* bias = ckpt.find(ckpt.ema_decoder, "z_preprocess.0.0.bias");
  const torch::Tensor* gain = ckpt.find(ckpt.ema_decoder, "z_preprocess.0.0.weight_gain");
  if (!bias || !gain || bias->numel() == 0 || gain->numel() != 1) return {};
  const auto b = ckpt.load(*bias), g = ckpt.load(*gain);
  const bool untouched = b.abs().max().item<double>() == 0.0 && std::abs(g.item<double>() - 0.01) < 1e-6;
  if (untouched) return {};
  return "z_preprocess, the decoder's latent mapping, holds trained-looking weights (bias not zero or gain not "
         "0.01); it is used only with the authors' --stylefc, which the file does not record. If this checkpoint "
         "was trained with --stylefc, its decoder passes every code through that layer first and this import "
         "decodes differently";
}

int maxReso(int resolution) { return resolution >= 512 ? resolution : 256; }

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

const ReleasedModel* recognisedReleasedModel(const ReferenceCheckpoint& ckpt, const std::string& source) {
  checkLayout(ckpt, source);
  return recognise(ckpt, inferReferenceArchitecture(ckpt, source).name);
}

bool needsAlignmentChoice(const ReferenceCheckpoint& ckpt, const std::string& source) {
  return recognisedReleasedModel(ckpt, source) == nullptr;
}

bool needsAlignmentChoice(const std::filesystem::path& path) {
  return needsAlignmentChoice(readReferenceCheckpoint(path, TorchRead::Streamed), path.filename().string());
}

const std::vector<AlignmentChoice>& alignmentChoices() {
  static const std::vector<AlignmentChoice> choices{
      {"ffhq", "faces, aligned as in FFHQ (eyes and mouth where FFHQ puts them)"},
      {"celebahq", "faces, aligned as in CelebA-HQ"},
      {"none", "no face alignment, for scenes such as bedrooms or cars: photos are centre-cropped, never searched "
               "for faces"},
  };
  return choices;
}

namespace {

struct Plan {
  ReferenceArchitecture arch;
  const ReleasedModel* released = nullptr;
  std::string alignment, alignment_reason;
};

/// What an import will make of a checkpoint, from its structure alone (no tensor data): refuses a
/// layout our networks cannot compute and an unrecognised checkpoint without a chosen alignment.
Plan planImport(const ReferenceCheckpoint& ckpt, const std::string& source, const ReferenceImportOptions& options) {
  checkLayout(ckpt, source);
  Plan plan;
  plan.arch = inferReferenceArchitecture(ckpt, source);
  const auto& arch = plan.arch;
  const std::string file_name = std::filesystem::path(source).filename().string();
  const auto describe = [&] {
    return "iteration " + std::to_string(ckpt.iteration) + ", " + arch.name + " architecture, " +
           std::to_string(arch.config.resolution) + " px";
  };

  // The alignment: the released model's, or the caller's choice; never a guess.
  const ReleasedModel* released = plan.released = recognise(ckpt, arch.name);
  Plan& out = plan;
  out.alignment = options.alignment;
  if (out.alignment.empty()) {
    if (!released) {
      std::string choices;
      for (const auto& c : alignmentChoices()) choices += (choices.empty() ? "" : "; ") + c.name + ": " + c.meaning;
      throw Error(file_name + " is not one of the authors' released models (" + describe() +
                  "), so the alignment of the photos it was trained on is unknown; choose it (--alignment): " + choices);
    }
    out.alignment = released->alignment;
    out.alignment_reason = "recognised as " + released->name + " (" + describe() + ")";
  } else {
    bool known = false;
    for (const auto& c : alignmentChoices()) known = known || c.name == out.alignment;
    if (!known) throw Error("unknown alignment '" + out.alignment + "': use ffhq, celebahq or none");
    out.alignment_reason = options.alignment_source.empty() ? std::string("chosen by the user") : options.alignment_source;
    if (released)
      out.alignment_reason += released->alignment == out.alignment
                                  ? "; the file is " + released->name + ", whose alignment it is"
                                  : "; the file is " + released->name + ", trained on " + released->alignment +
                                        "-aligned photos";
    else
      out.alignment_reason += "; not one of the released models (" + describe() + ")";
  }
  return plan;
}

}  // namespace

ReferenceImport importReference(const ReferenceCheckpoint& ckpt, const std::string& source, const std::string& sha256,
                                const ReferenceImportOptions& options) {
  const Plan plan = planImport(ckpt, source, options);
  const auto& arch = plan.arch;
  const ReleasedModel* released = plan.released;
  const int stages = arch.config.numBlocks();
  const std::string file_name = std::filesystem::path(source).filename().string();
  ReferenceImport out;
  out.alignment = plan.alignment;
  out.alignment_reason = plan.alignment_reason;

  // Not initialised: every tensor is read from the file (Mapping::apply checks that none is left).
  auto model = std::make_unique<Automodulator>(arch.config, torch::kCPU, WeightInit::None);
  Mapping map(ckpt, source);
  mapDecoder(map, ckpt, ckpt.ema_decoder, "G_running_state_dict", "ema.", stages);
  mapDecoder(map, ckpt, ckpt.decoder, "G_state_dict", "decoder.", stages);
  std::vector<std::string> unused;
  mapEncoder(map, ckpt, source, stages, arch.reference_blocks, &unused);
  map.apply(*model);
  // Mid-fade-in (alpha < 1) the networks blend the top block with the one below, as the authors'
  // networks at that alpha: the model keeps both the top stage and the alpha.
  const double alpha = stages > 1 ? std::clamp(ckpt.alpha, 0.0, 1.0) : 1.0;
  model->setStage(stages - 1, alpha);
  model->ema->setNoise(false);
  model->decoder->setNoise(false);

  // What the file holds that the model does not.
  if (ckpt.find(ckpt.ema_decoder, "z_preprocess.0.0.weight_orig"))
    unused.push_back("z_preprocess (the decoder's latent mapping, used only with the authors' --stylefc option)");
  if (ckpt.find(ckpt.ema_decoder, "label_embed.weight")) unused.push_back("label_embed (unused by the authors' code)");
  if (ckpt.find(ckpt.ema_decoder, "noise.0.0.noise_scale"))
    unused.push_back("noise.0 (block 0 draws no layer noise in the authors' forward pass)");
  if (arch.reference_blocks > stages)
    unused.push_back("decoder and encoder blocks above " + std::to_string(4 << (stages - 1)) + " px (" +
                     std::to_string(arch.reference_blocks - stages) + " of the " +
                     std::to_string(arch.reference_blocks) + " the authors' networks are built with; untrained at phase " +
                     std::to_string(ckpt.phase) + ")");
  unused.push_back("the optimiser and robust-loss states (import with --training-state to fine-tune)");
  out.not_carried = unused;
  if (auto w = stylefcWarning(ckpt); !w.empty()) out.warnings.push_back(w);
  if (alpha < 1.0)
    out.warnings.push_back("saved mid-fade-in (alpha " + number(alpha) + "): encoding and decoding blend the " +
                           std::to_string(arch.config.resolution) + " px block with the one below at that alpha, as the " +
                           "authors' networks do; their Session.encode/decode would use alpha 1");

  std::string file = source;
  if (options.file_name_only) file = file_name;
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
                    {"alignment_reason", out.alignment_reason},
                    {"not_carried", unused}};
  if (!out.warnings.empty()) out.provenance["warnings"] = out.warnings;
  if (released) out.provenance["released_model"] = released->name;
  model->metadata["provenance"] = out.provenance;
  model->metadata["alignment"] = out.alignment;
  // Photos as the authors' Session.tf() brings them to the model (read by core/align/photo).
  model->metadata["input_transform"] = {{"kind", "reference"}, {"max_reso", maxReso(arch.config.resolution)}};
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

/// An optimiser's state as the authors' code saves it (one Adam, one parameter group). Anything else
/// is kept as a `problem` in words: the model imports without it; only --training-state needs it.
ReferenceCheckpoint::Optimizer optimizerState(const pickle::Value& root, const char* key,
                                              const std::shared_ptr<const TorchTensorSource>& source) {
  ReferenceCheckpoint::Optimizer o;
  auto v = root.find(key);
  if (!v) return o;
  o.present = true;
  const std::string what = std::string("'") + key + "'";
  if (!v->isDict()) {
    o.problem = what + " is a " + v->describe() + ", not an optimiser's state dict";
    return o;
  }
  auto groups = v->find("param_groups");
  auto state = v->find("state");
  if (!groups || !(groups->isList() || groups->isTuple()) || !state || !state->isDict()) {
    o.problem = what + " has no readable 'param_groups' and 'state'";
    return o;
  }
  if (groups->size() != 1) {
    o.problem = what + " has " + std::to_string(groups->size()) +
                " parameter groups where the authors' code makes one, so its moments cannot be matched to parameters";
    return o;
  }
  try {
    const auto& group = *groups->at(0);
    o.lr = group.at("lr")->asDouble();
    o.params = static_cast<int64_t>(group.at("params")->size());
    for (auto& [k, s] : state->items()) {
      ReferenceCheckpoint::AdamEntry e;
      const auto& step = s->at("step");
      // An int in older PyTorch, a one-element tensor in newer.
      if (step->isTensor()) {
        const auto t = source && source->holds(step->tensor()) ? source->load(step->tensor()) : step->tensor();
        if (t.numel() != 1) throw Error("'step' is a tensor of " + std::to_string(t.numel()) + " elements");
        e.step = static_cast<int64_t>(t.item<double>());
      } else {
        e.step = step->asInt();
      }
      e.exp_avg = s->at("exp_avg")->tensor();
      e.exp_avg_sq = s->at("exp_avg_sq")->tensor();
      o.state[k->asInt()] = e;
    }
  } catch (const Error& e) {
    o.state.clear();
    o.problem = what + " is not the state of an Adam optimiser: " + e.what();
  }
  return o;
}

}  // namespace

ReferenceCheckpoint readReferenceCheckpoint(const std::filesystem::path& path, TorchRead mode) {
  const std::string source = path.filename().string();
  auto file = readTorchFile(path, mode);
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
    for (auto& u : snu->elements()) c.snu.push_back(u->tensor());  // (throws for a non-tensor)
    for (int k = 0; root.contains("adaptive_loss_" + std::to_string(k)); ++k) {
      auto entry = root.at("adaptive_loss_" + std::to_string(k));
      const auto& dict = entry->isTuple() ? entry->at(size_t(0)) : entry;
      c.robust.emplace_back(dict->at("latent_alpha")->tensor(), dict->at("latent_scale")->tensor());
    }
  } catch (const Error& e) {
    throw Error(source + " is not a complete checkpoint of the authors' code: " + e.what());
  }
  c.optimizer_encoder = optimizerState(root, "optimizerD", file.tensors);
  c.optimizer_decoder = optimizerState(root, "optimizerG", file.tensors);
  c.optimizer_style = optimizerState(root, "optimizerA", file.tensors);
  c.format = file.format;
  c.location = file.locations.empty() ? "cpu" : file.locations.front();
  c.source = file.tensors;
  return c;
}

torch::Tensor ReferenceCheckpoint::load(const torch::Tensor& t) const {
  if (source && source->holds(t)) return source->load(t);
  return t;
}

torch::Tensor ReferenceCheckpoint::view(const torch::Tensor& t) const {
  return source && source->holds(t) ? source->view(t) : torch::Tensor();
}

void ReferenceCheckpoint::readInto(const torch::Tensor& t, const torch::Tensor& dst) const {
  if (source && source->holds(t)) {
    source->readInto(t, dst);
  } else {
    torch::NoGradGuard no_grad;
    dst.copy_(t.reshape(dst.sizes()));
  }
}

ReferenceImport importReferenceFile(const std::filesystem::path& path, const ReferenceImportOptions& options,
                                    ReferenceCheckpoint* checkpoint) {
  auto ckpt = readReferenceCheckpoint(path, TorchRead::Streamed);
  planImport(ckpt, path.string(), options);  // refusals that need no tensor data come first
  // The hash reads the whole file, the import only the tensors it uses: side by side they take about
  // as long as the longer of the two.
  auto sha = std::async(std::launch::async, [&path] { return sha256File(path); });
  auto imported = importReference(ckpt, path.string(), "", options);
  imported.provenance["sha256"] = sha.get();
  imported.model->metadata["provenance"] = imported.provenance;
  if (checkpoint) *checkpoint = std::move(ckpt);
  return imported;
}

}  // namespace automod

// ---------------------------------------------------------------------------------------------
// Writing a model in the authors' format

namespace automod {
namespace {

using pickle::Value;
using pickle::ValuePtr;

/// An OrderedDict-like state dict under construction ("module." prefixed, in insertion order).
struct DictBuilder {
  std::vector<std::pair<ValuePtr, ValuePtr>> items;
  void add(const std::string& name, const torch::Tensor& t) {
    items.emplace_back(Value::string("module." + name), Value::tensor(t));
  }
  ValuePtr done() const { return Value::dict(items); }
};

ValuePtr str(const std::string& s) { return Value::string(s); }

}  // namespace

pickle::ValuePtr referenceCheckpointTree(Automodulator& model, const ReferenceExportOptions& options) {
  const auto& c = model.config();
  const bool small = c.width_table == "reference-small";
  const int B = options.reference_blocks;
  if (B < c.numBlocks() || B > 9) throw Error("reference_blocks must be from the model's blocks to 9");
  const auto full = ModelConfig::reference(4 << (B - 1), c.latent_dim, small, c.image_channels);
  if (!(ModelConfig::reference(c.resolution, c.latent_dim, small, c.image_channels) == c))
    throw Error("only a model with the authors' widths (ModelConfig::reference) can be written in their format");
  const int stages = c.numBlocks();
  const int64_t nz = c.latent_dim, rgb = c.image_channels;
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(options.seed);
  const auto randn = [&](std::vector<int64_t> shape, double scale) {
    return (at::randn(shape, gen, torch::TensorOptions().dtype(torch::kFloat32)) * scale).contiguous();
  };

  // theirs → ours, for the model's own blocks.
  std::map<std::string, std::string> decoder_names, encoder_names;
  for (const auto& n : referenceParameterNames(stages, B)) {
    auto& names = n.network == ReferenceName::Decoder ? decoder_names : encoder_names;
    names[n.theirs] = n.ours;
    if (!n.alternative.empty()) names[n.alternative] = n.ours;
  }

  const auto decoderDict = [&](Decoder& net) {
    auto ours = net->named_parameters(true);
    const auto get = [&](const std::string& theirs, std::vector<int64_t> shape, double scale) {
      auto it = decoder_names.find(theirs);
      if (it != decoder_names.end()) return ours[it->second].detach().reshape(shape).contiguous();
      return randn(shape, scale);
    };
    DictBuilder d;
    d.add("label_embed.weight", randn({1, 1}, 1.0));
    // The AdaIN linears, in creation order: block 0 has one, the others two. The same tensors appear
    // again inside progression (shared parameters, one storage in the file).
    std::vector<torch::Tensor> style_w, style_b;
    for (int b = 0; b < B; ++b)
      for (int layer = 1; layer <= (b == 0 ? 1 : 2); ++layer) {
        const int64_t w = full.widths[b];
        const std::string k = std::to_string(b == 0 ? 0 : 2 * b - 2 + layer);
        style_w.push_back(get("adanorm_blocks." + k + ".mod.weight", {2 * w, nz}, 0.1));
        style_b.push_back(get("adanorm_blocks." + k + ".mod.bias", {2 * w}, 0.1) + (b < stages ? 0.0 : 1.0));
        d.add("adanorm_blocks." + k + ".mod.weight", style_w.back());
        d.add("adanorm_blocks." + k + ".mod.bias", style_b.back());
      }
    size_t k = 0;
    for (int b = 0; b < B; ++b) {
      const int64_t out = full.widths[b], in = b == 0 ? full.widths[0] : full.widths[b - 1];
      const std::string p = "progression." + std::to_string(b) + ".conv.";
      const auto conv = [&](const std::string& name, int64_t cin) {
        d.add(name + ".bias", get(name + ".bias", {out}, 0.1));
        d.add(name + ".weight_orig", get(name + ".weight_orig", {out, cin, 3, 3}, 1.0));
        d.add(name + ".weight_gain", get(name + ".weight_gain", {1}, 0.0) + (b < stages ? 0.0 : 1.0));
      };
      if (b == 0) {
        conv(p + "1.conv", out);
        d.add(p + "3.mod.weight", style_w[k]);
        d.add(p + "3.mod.bias", style_b[k++]);
      } else {
        conv(p + "0.0.conv", in);
        d.add(p + "0.3.mod.weight", style_w[k]);
        d.add(p + "0.3.mod.bias", style_b[k++]);
        conv(p + "1.conv", out);
        d.add(p + "3.mod.weight", style_w[k]);
        d.add(p + "3.mod.bias", style_b[k++]);
      }
    }
    for (int b = 0; b < B; ++b) {
      const std::string n = "to_rgb." + std::to_string(b);
      d.add(n + ".weight", get(n + ".weight", {rgb, full.widths[b], 1, 1}, 0.1));
      d.add(n + ".bias", get(n + ".bias", {rgb}, 0.1));
    }
    for (int b = 0; b < B; ++b)
      for (int l = 0; l < 2; ++l) {
        const std::string n = "noise." + std::to_string(b) + "." + std::to_string(l) + ".noise_scale";
        d.add(n, b == 0 ? torch::zeros({full.widths[b]}) : get(n, {full.widths[b]}, 0.01));
      }
    // z_preprocess as initialised and never trained (no --stylefc): bias 0, gain 0.01.
    for (int l = 0; l < 2; ++l) {
      const std::string n = "z_preprocess." + std::to_string(l) + ".0.";
      d.add(n + "bias", torch::zeros({nz}));
      d.add(n + "weight_orig", randn({nz, nz}, 100.0 / std::sqrt(double(nz))));
      d.add(n + "weight_gain", torch::full({1}, 0.01f));
    }
    return d;
  };

  DictBuilder g = decoderDict(model.decoder), g_running = decoderDict(model.ema);

  // The encoder: the authors number blocks from the largest resolution.
  auto ours = model.encoder->named_parameters(true);
  auto buffers = model.encoder->named_buffers(true);
  std::vector<ValuePtr> snu;
  DictBuilder d;
  const auto width = [&](int b) { return int64_t(b < 0 ? nz : full.encoder_widths[b]); };
  for (int k = 0; k < B; ++k) {
    const int b = B - 1 - k;  // our block
    const int64_t in = width(b), out = width(b - 1);
    for (int l = 0; l < 2; ++l) {
      const std::string n = "progression." + std::to_string(k) + ".conv." + (l == 0 ? "0" : "2") + ".conv.";
      const int64_t kernel = (k == B - 1 && l == 1) ? 4 : 3;
      const auto it = encoder_names.find(n + "weight_orig");
      if (it != encoder_names.end()) {
        const std::string layer = it->second.substr(0, it->second.size() - std::string("weight_orig").size());
        d.add(n + "bias", ours[layer + "bias"].detach());
        d.add(n + "weight_orig", ours[layer + "weight_orig"].detach());
        snu.push_back(Value::tensor(buffers[layer + "u"].detach().reshape({-1, 1}).contiguous()));
      } else {
        d.add(n + "bias", randn({out}, 0.1));
        d.add(n + "weight_orig", randn({out, l == 0 ? in : out, kernel, kernel}, 0.1));
        auto u = randn({out, 1}, 1.0);
        snu.push_back(Value::tensor(u / u.norm()));
      }
    }
  }
  for (int k = 0; k < B; ++k) {
    const int b = B - 1 - k;
    const std::string n = "from_rgb." + std::to_string(k) + ".";
    const bool have = b < stages;
    d.add(n + "weight", have ? ours["from_rgb." + std::to_string(b) + ".weight"].detach() : randn({width(b), rgb, 1, 1}, 0.1));
    d.add(n + "bias", have ? ours["from_rgb." + std::to_string(b) + ".bias"].detach() : randn({width(b)}, 0.1));
  }

  // Optimisers: one Adam each with one parameter group, as the authors' Session.reset_opt makes them.
  const auto adam = [&](int64_t params, const std::vector<torch::Tensor>& moments_like) {
    std::vector<ValuePtr> indices;
    for (int64_t i = 0; i < params; ++i) indices.push_back(Value::integer(i));
    auto group = Value::dict({{str("lr"), Value::real(0.001)},
                              {str("betas"), Value::tuple({Value::real(0.0), Value::real(0.99)})},
                              {str("eps"), Value::real(1e-8)},
                              {str("weight_decay"), Value::integer(0)},
                              {str("amsgrad"), Value::boolean(false)},
                              {str("params"), Value::list(indices)}});
    std::vector<std::pair<ValuePtr, ValuePtr>> state;
    for (size_t i = 0; i < moments_like.size(); ++i) {
      const auto& p = moments_like[i];
      state.emplace_back(Value::integer(int64_t(i)),
                         Value::dict({{str("step"), Value::integer(int64_t(options.iteration / 16 + 1))},
                                      {str("exp_avg"), Value::tensor(randn(p.sizes().vec(), 1e-3))},
                                      {str("exp_avg_sq"), Value::tensor(randn(p.sizes().vec(), 1e-3).abs())}}));
    }
    return Value::dict({{str("state"), Value::dict(state)}, {str("param_groups"), Value::list({group})}});
  };
  std::vector<std::pair<ValuePtr, ValuePtr>> robust;
  std::vector<torch::Tensor> d_params, g_params;
  for (const auto& [k, v] : d.items) d_params.push_back(v->tensor());
  for (int k = 0; k < B; ++k) {
    const int64_t n = rgb * (int64_t(4) << k) * (int64_t(4) << k);
    auto alpha = randn({1, n}, 0.1), scale = randn({1, n}, 0.1);
    d_params.push_back(alpha);
    d_params.push_back(scale);
    robust.emplace_back(str("adaptive_loss_" + std::to_string(k)),
                        Value::tuple({Value::dict({{str("latent_alpha"), Value::tensor(alpha)},
                                                   {str("latent_scale"), Value::tensor(scale)}})}));
  }
  for (const auto& [k, v] : g.items) {
    const auto& name = k->asString();
    const bool duplicate = name.rfind("module.progression.", 0) == 0 && name.find(".mod.") != std::string::npos;
    if (!duplicate) g_params.push_back(v->tensor());
  }
  const auto none = std::vector<torch::Tensor>{};
  std::vector<std::pair<ValuePtr, ValuePtr>> root{
      {str("G_state_dict"), g.done()},
      {str("D_state_dict"), d.done()},
      {str("G_running_state_dict"), g_running.done()},
      {str("optimizerD"), adam(int64_t(d_params.size()), options.adam_moments ? d_params : none)},
      {str("optimizerG"), adam(int64_t(g_params.size()), options.adam_moments ? g_params : none)},
      {str("optimizerA"), adam(2 * (2 * B - 1), none)},
      {str("iteration"), Value::integer(options.iteration)},
      {str("phase"), Value::integer(model.stage())},
      {str("alpha"), Value::real(model.alpha())},
      {str("SNU"), Value::list(snu)}};
  for (auto& r : robust) root.push_back(r);
  return Value::dict(root);
}

}  // namespace automod
