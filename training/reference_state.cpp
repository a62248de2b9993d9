#include "training/reference_state.h"

#include <torch/optim/adam.h>

#include <map>
#include <sstream>
#include <type_traits>

#include "core/util/error.h"
#include "training/schedule.h"
#include "training/trainer.h"

namespace automod {
namespace {

/// Sets the Adam moments of one parameter. LibTorch keys its state by the parameter's TensorImpl:
/// as a string in 1.x, as a pointer in 2.x.
template <typename Map>
void putAdamState(Map& state, const torch::Tensor& param, std::unique_ptr<torch::optim::AdamParamState> s) {
  using Key = typename Map::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream key;
    key << param.unsafeGetTensorImpl();
    state[key.str()] = std::move(s);
  } else {
    state[reinterpret_cast<Key>(param.unsafeGetTensorImpl())] = std::move(s);
  }
}

std::string defaultPreset(const ReferenceImport& imported) {
  const auto& p = imported.provenance;
  const std::string released = p.value("released_model", std::string());
  if (released == "ffhq512") return "paper-ffhq512";
  if (released == "celebahq256") return "paper-celebahq256";
  if (released.rfind("lsun", 0) == 0) return "paper-lsun256";
  if (released == "ffhq256") return "paper-ffhq256";
  if (p.value("architecture", std::string()) == "small") return "paper-celebahq256";
  if (imported.model->metadata.value("alignment", std::string()) == "none") return "paper-lsun256";
  return imported.model->config().resolution >= 512 ? "paper-ffhq512" : "paper-ffhq256";
}

/// Carries one optimiser's moments: `theirs[i]` names the parameter at index i of the authors'
/// optimiser, `ours` maps those names to our parameters. Returns the number of parameters carried, or
/// -1 (and a note) when the file's optimiser does not have the expected parameters.
int carryAdam(const ReferenceCheckpoint& ckpt, const ReferenceCheckpoint::Optimizer& from,
              const std::vector<std::string>& theirs, const std::map<std::string, torch::Tensor>& ours,
              torch::optim::Adam& to, const std::string& what, std::vector<std::string>* notes) {
  if (!from.present) {
    notes->push_back("the " + what + " optimiser: the file has none (fresh Adam moments)");
    return 0;
  }
  if (from.params != static_cast<int64_t>(theirs.size())) {
    notes->push_back("the " + what + " optimiser: the file's has " + std::to_string(from.params) +
                     " parameters where its networks have " + std::to_string(theirs.size()) +
                     " (fresh Adam moments)");
    return -1;
  }
  if (from.state.empty()) {
    notes->push_back("the " + what + " optimiser: its state in the file is empty (fresh Adam moments)");
    return 0;
  }
  // Check every entry before setting any.
  std::vector<std::pair<torch::Tensor, const ReferenceCheckpoint::AdamEntry*>> moves;
  for (const auto& [index, entry] : from.state) {
    if (index < 0 || index >= static_cast<int64_t>(theirs.size())) {
      notes->push_back("the " + what + " optimiser: state for parameter " + std::to_string(index) +
                       " that it does not have (fresh Adam moments)");
      return -1;
    }
    auto it = ours.find(theirs[index]);
    if (it == ours.end()) continue;  // a parameter we do not have (an unused layer)
    const auto& p = it->second;
    if (entry.exp_avg.numel() != p.numel() || entry.exp_avg_sq.numel() != p.numel()) {
      notes->push_back("the " + what + " optimiser: the moments of '" + theirs[index] +
                       "' do not have its shape, so its parameter order is not the expected one (fresh Adam moments)");
      return -1;
    }
    moves.emplace_back(p, &entry);
  }
  for (auto& [p, entry] : moves) {
    auto s = std::make_unique<torch::optim::AdamParamState>();
    s->step(entry->step);
    s->exp_avg(ckpt.load(entry->exp_avg).reshape(p.sizes()).to(p.options()).clone());
    s->exp_avg_sq(ckpt.load(entry->exp_avg_sq).reshape(p.sizes()).to(p.options()).clone());
    putAdamState(to.state(), p, std::move(s));
  }
  return static_cast<int>(moves.size());
}

}  // namespace

ReferenceTrainingState referenceTrainingState(ReferenceImport& imported, const ReferenceCheckpoint& ckpt,
                                              const ReferenceTrainingOptions& options) {
  ReferenceTrainingState out;
  auto& model = *imported.model;
  const ModelConfig& config = model.config();
  if (config.width_table != "reference" && config.width_table != "reference-small")
    throw Error("this checkpoint's widths are neither the authors' default nor their small architecture, so no preset "
                "can train it; import it without --training-state to edit with it");
  // The model imports without its optimisers; a run cannot start without knowing their moments.
  for (const auto* o : {&ckpt.optimizer_encoder, &ckpt.optimizer_decoder})
    if (!o->problem.empty())
      throw Error("cannot carry the training state: " + o->problem +
                  "; import it without --training-state to edit with it");

  // The preset, fitted to the model: its resolution, latent size, and a run that ends
  // training_images after the checkpoint.
  const std::string preset_name = options.preset.empty() ? defaultPreset(imported) : options.preset;
  TrainingPreset preset = loadPreset(preset_name);
  preset.resolution = config.resolution;
  preset.latent_dim = config.latent_dim;
  preset.width_table = config.width_table;
  preset.widths.clear();
  std::vector<Phase> phases;
  for (const auto& ph : preset.phases)
    if (ph.resolution <= config.resolution) phases.push_back(ph);
  preset.phases = phases;
  if (preset.phases.empty() || preset.phases.back().resolution != config.resolution)
    throw Error("preset '" + preset_name + "' never reaches this model's " + std::to_string(config.resolution) + " px");
  if (!(preset.modelConfig(config.image_channels) == config))
    throw Error("preset '" + preset_name + "' builds another architecture than this checkpoint's; choose another --preset");

  // Where on the schedule: the file's images seen if the preset is at the file's phase and α
  // there, else the point where the preset is.
  const int phase = ckpt.phase;
  int64_t images = ckpt.iteration;
  const auto at_file = preset.at(std::clamp<int64_t>(images, 0, INT64_MAX));
  if (at_file.stage != phase || std::abs(at_file.alpha - ckpt.alpha) > 1e-6) {
    int64_t start = -1;
    for (const auto& ph : preset.phases)
      if (ph.resolution == (4 << phase)) {
        start = ph.images_at_start;
        break;
      }
    images = start + static_cast<int64_t>(std::llround(std::clamp(ckpt.alpha, 0.0, 1.0) *
                                                       double(phase == 0 ? 0 : preset.fade_in_images)));
    out.not_carried.push_back("the schedule position: the file has seen " + std::to_string(ckpt.iteration) +
                              " images, where " + preset_name + " is not at " + std::to_string(4 << phase) +
                              " px with alpha " + std::to_string(ckpt.alpha) + "; the run continues from " +
                              std::to_string(images) + " images, where it is");
  }
  preset.total_images = images + std::max<int64_t>(options.training_images, 1);
  preset.name = preset_name + "-fine-tune";
  preset.description = "Fine-tuning an imported checkpoint of the authors' code with " + preset_name + "'s settings, " +
                       std::to_string(options.training_images) + " images from " + std::to_string(images) + ".";
  preset.validate();

  const auto point = preset.at(images);
  model.setStage(point.stage);
  TrainingModules modules(model, point.lr, preset.flip_invariance, preset.encoder_lr_factor,
                          preset.losses.rec_max_resolution);

  // Robust-loss parameters: the file's at every resolution it holds them for (one per image element,
  // as the preset keeps them). A resolution the file lacks, or holds at another size, starts as the
  // preset starts a new resolution, from the one below.
  const int stages = config.numBlocks();
  for (int k = 0; k < stages; ++k) {
    const int r = 4 << k;
    const bool fits = k < static_cast<int>(ckpt.robust.size()) &&
                      ckpt.robust[k].first.numel() == modules.robust->alphaLatent(r).numel() &&
                      ckpt.robust[k].second.numel() == modules.robust->scaleLatent(r).numel();
    if (fits) {
      modules.robust->loadReference(r, ckpt.load(ckpt.robust[k].first), ckpt.load(ckpt.robust[k].second));
    } else if (k > 0) {
      const bool flat = preset.losses.robust_growth == RobustGrowth::Flat;
      modules.robust->growTo(r, preset.losses.robust_growth);
      out.not_carried.push_back(
          "the robust-loss parameters at " + std::to_string(r) + " px: the file's have " +
          (k < static_cast<int>(ckpt.robust.size()) ? std::to_string(ckpt.robust[k].first.numel()) : std::string("no")) +
          " elements where the preset keeps " + std::to_string(modules.robust->alphaLatent(r).numel()) +
          "; started from " + std::to_string(r / 2) + " px's" +
          (flat ? " as the authors' code starts a new resolution" : " replicated over 2x2 blocks"));
    } else {
      out.not_carried.push_back("the robust-loss parameters at 4 px: missing in the file (fresh)");
    }
  }

  // Adam moments. The authors' optimizerD holds the encoder's parameters in state-dict order and
  // then each resolution's robust-loss alpha and scale; optimizerG the decoder's parameters in
  // state-dict order, each shared AdaIN linear once.
  const auto names = referenceParameterNames(stages, static_cast<int>(ckpt.snu.size() / 2));
  std::map<std::string, torch::Tensor> our_encoder, our_decoder;
  auto enc = model.encoder->named_parameters(true);
  auto dec = model.decoder->named_parameters(true);
  for (const auto& n : names) {
    if (n.network == ReferenceName::Encoder) {
      if (enc.contains(n.ours)) our_encoder[n.theirs] = enc[n.ours];
    } else if (dec.contains(n.ours)) {
      our_decoder[n.theirs] = dec[n.ours];
      if (!n.alternative.empty()) our_decoder[n.alternative] = dec[n.ours];
    }
  }
  for (int k = 0; k < stages; ++k) {
    our_encoder["adaptive_loss_" + std::to_string(k) + ".latent_alpha"] = modules.robust->alphaLatent(4 << k);
    our_encoder["adaptive_loss_" + std::to_string(k) + ".latent_scale"] = modules.robust->scaleLatent(4 << k);
  }
  std::vector<std::string> their_encoder, their_decoder;
  for (const auto& [k, t] : ckpt.encoder) their_encoder.push_back(k);
  for (size_t k = 0; k < ckpt.robust.size(); ++k) {
    their_encoder.push_back("adaptive_loss_" + std::to_string(k) + ".latent_alpha");
    their_encoder.push_back("adaptive_loss_" + std::to_string(k) + ".latent_scale");
  }
  const bool adanorm = ckpt.find(ckpt.decoder, "adanorm_blocks.0.mod.weight") != nullptr;
  for (const auto& [k, t] : ckpt.decoder) {
    const bool duplicate = adanorm && k.rfind("progression.", 0) == 0 && k.find(".mod.") != std::string::npos;
    if (!duplicate) their_decoder.push_back(k);
  }
  carryAdam(ckpt, ckpt.optimizer_encoder, their_encoder, our_encoder, *modules.encoder_opt, "encoder",
            &out.not_carried);
  carryAdam(ckpt, ckpt.optimizer_decoder, their_decoder, our_decoder, *modules.decoder_opt, "decoder",
            &out.not_carried);
  if (ckpt.optimizer_style.present && !ckpt.optimizer_style.state.empty())
    out.not_carried.push_back("optimizerA (the AdaIN linears' optimiser of the authors' flip-invariance training)");
  out.not_carried.push_back("the image pool (the authors' checkpoints do not hold it): it starts empty");

  TrainingCounters counters;
  counters.images_seen = images;
  counters.iteration = images / std::max(1, point.batch);
  counters.stage = point.stage;
  counters.seed = options.seed;
  torch::manual_seed(options.seed);
  out.checkpoint = trainingCheckpoint(model, modules, preset, counters, nullptr);
  out.preset_name = preset_name;
  out.images_seen = images;
  return out;
}

}  // namespace automod
