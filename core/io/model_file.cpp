#include "core/io/model_file.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>
#include <sstream>
#include <unordered_map>

#include "core/util/error.h"

namespace automod {

TensorArchive modelArchive(Automodulator& model) {
  TensorArchive a;
  a.header["kind"] = "model";
  a.header["format"] = "automodulator";
  a.header["config"] = model.config().toJson();
  a.header["stage"] = model.stage();
  if (model.alpha() < 1.0) a.header["alpha"] = model.alpha();  // a checkpoint saved mid-fade-in
  a.header["resolution"] = model.resolution();
  nlohmann::json meta = model.metadata;
  meta["tool_version"] = AUTOMOD_VERSION;
  if (!meta.contains("created"))
    meta["created"] = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  a.header["metadata"] = meta;
  for (auto& [name, t] : namedState(model)) a.add(name, t);
  return a;
}

void saveModel(const std::filesystem::path& path, Automodulator& model) { writeArchive(path, modelArchive(model)); }

namespace {

bool isWholeNumber(const nlohmann::json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= uint64_t(INT32_MAX);
  if (v.is_number_integer()) return v.get<int64_t>() >= INT32_MIN && v.get<int64_t>() <= INT32_MAX;
  return false;
}

// The config's fields are checked for their JSON type before ModelConfig::fromJson reads them: a file
// with a valid checksum can hold anything, and nlohmann's get<int>() of 1e300 is undefined behaviour.
void checkConfigFields(const nlohmann::json& c, const std::string& source) {
  const std::string where = source + ": the model config in its header";
  if (!c.is_object()) throw Error(where + " is not a JSON object");
  enum Kind { Int, IntList, Bool, Number, String };
  static const std::pair<const char*, Kind> fields[] = {
      {"resolution", Int},       {"image_channels", Int},         {"latent_dim", Int},
      {"widths", IntList},       {"encoder_widths", IntList},     {"learned_input", Bool},
      {"adain_eps", Number},     {"width_table", String},         {"extra_8x8_block", Bool},
      {"plain_modulation", Bool}, {"encoder_widen_first", Bool},  {"plain_from_rgb", Bool},
      {"learned_gain", Bool},    {"adain_unbiased", Bool},        {"noise_per_element", Bool},
      {"sn_power_iteration_in_graph", Bool}};
  for (auto [key, kind] : fields) {
    auto it = c.find(key);
    if (it == c.end()) continue;  // fromJson names the required ones that are missing
    const auto& v = *it;
    bool ok = false;
    const char* want = "";
    switch (kind) {
      case Int: ok = isWholeNumber(v), want = "a whole number"; break;
      case IntList:
        ok = v.is_array() && v.size() <= 64 && std::all_of(v.begin(), v.end(), isWholeNumber);
        want = "a list of whole numbers";
        break;
      case Bool: ok = v.is_boolean(), want = "true or false"; break;
      case Number: ok = v.is_number(), want = "a number"; break;
      case String: ok = v.is_string(), want = "a string"; break;
    }
    if (!ok) throw Error(where + " has a field '" + key + "' that is not " + want);
  }
}

// nlohmann's "[json.exception.type_error.302] type must be ..." inside a message, as a sentence.
std::string withoutJsonCodes(const std::string& msg) {
  auto at = msg.find("[json.exception.");
  if (at == std::string::npos) return msg;
  return msg.substr(0, at) + jsonErrorText(msg.substr(at));
}

// Bytes a model of this config holds at least (32-bit floats): the decoder and its EMA copy (each block's
// 3×3 convolutions from its width to its width after the first, and AdaIN style linears latent_dim →
// 2·width), and the encoder's 3×3 convolutions. A header whose config needs more than the file holds is
// refused before the model is built: a few bytes of JSON could otherwise ask for tens of gigabytes.
uint64_t minimumModelBytes(const ModelConfig& c) {
  const uint64_t z = uint64_t(c.latent_dim);
  uint64_t decoder = 0, encoder = 0;
  for (size_t b = 0; b < c.widths.size(); ++b) {
    const uint64_t w = uint64_t(c.widths[b]);
    decoder += (b == 0 ? 1 : 2) * z * 2 * w + (b == 0 ? 0 : 9 * w * w);
  }
  const auto& ew = c.encoder_widths.empty() ? c.widths : c.encoder_widths;
  for (size_t b = 1; b < ew.size(); ++b) {
    const uint64_t in = uint64_t(ew[b]), out = uint64_t(ew[b - 1]), mid = c.encoder_widen_first ? out : in;
    encoder += 9 * mid * (in + out);
  }
  if (!ew.empty()) encoder += 9 * uint64_t(ew[0]) * uint64_t(ew[0]);
  return (2 * decoder + encoder) * 4;
}

// The model a header describes, built without initialising it (WeightInit::None), after checking that
// `tensors` hold every tensor of it with its shape and type, and no model tensor it does not have.
std::unique_ptr<Automodulator> uninitialisedModel(const nlohmann::json& h, const std::vector<ArchiveEntry>& tensors,
                                                  const std::string& source) {
  auto format = h.find("format");
  if (!h.is_object() || format == h.end() || *format != "automodulator" || !h.contains("config"))
    throw Error(source + " is an archive but not an automodulator model");
  checkConfigFields(h.at("config"), source);
  ModelConfig config;
  try {
    config = ModelConfig::fromJson(h.at("config"));
  } catch (const Error& e) {
    throw Error(source + ": " + withoutJsonCodes(e.what()));
  }
  int stage = config.numBlocks() - 1;
  if (auto it = h.find("stage"); it != h.end()) {
    if (!isWholeNumber(*it)) throw Error(source + ": the header field 'stage' is not a whole number");
    stage = it->get<int>();
  }
  if (stage < 0 || stage >= config.numBlocks()) throw Error(source + ": stage " + std::to_string(stage) + " is invalid");
  double alpha = 1.0;
  if (auto it = h.find("alpha"); it != h.end()) {
    if (!it->is_number() || !(it->get<double>() >= 0.0 && it->get<double>() <= 1.0) || (stage == 0 && *it != 1.0))
      throw Error(source + ": the header field 'alpha' is not a fade-in weight from 0 to 1");
    alpha = it->get<double>();
  }
  uint64_t held = 0;
  for (auto& t : tensors) held += t.nbytes;
  if (const uint64_t need = minimumModelBytes(config); need > held)
    throw Error(source + " does not match its config: the config describes a model of at least " + byteCount(need) +
                " but the file holds " + byteCount(held) + " of tensors");
  std::unique_ptr<Automodulator> model;
  try {
    model = std::make_unique<Automodulator>(config, torch::kCPU, WeightInit::None);
  } catch (const std::exception& e) {
    if (isOutOfMemory(e)) throw Error(outOfMemoryMessage(e, "build the model of " + source), errorDetail(e));
    throw;
  }
  model->setStage(stage, alpha);
  model->metadata = h.value("metadata", nlohmann::json::object());

  std::unordered_map<std::string, const ArchiveEntry*> by_name;
  for (auto& t : tensors) by_name.emplace(t.name, &t);
  std::set<std::string> expected;
  for (auto& [name, t] : namedState(*model)) {
    expected.insert(name);
    auto it = by_name.find(name);
    if (it == by_name.end()) throw Error(source + " does not match its config: tensor '" + name + "' is missing");
    const auto& s = *it->second;
    if (!t.sizes().equals(s.shape) || s.dtype != t.scalar_type()) {
      std::ostringstream msg;
      msg << source << " does not match its config: tensor '" << name << "' has shape " << c10::IntArrayRef(s.shape)
          << ", expected " << t.sizes();
      throw Error(msg.str());
    }
  }
  for (auto& t : tensors) {
    const auto& name = t.name;
    const bool is_model = name.rfind("encoder.", 0) == 0 || name.rfind("decoder.", 0) == 0 || name.rfind("ema.", 0) == 0;
    if (is_model && !expected.count(name))
      throw Error(source + " does not match its config: unexpected tensor '" + name + "'");
  }
  return model;
}

std::vector<ArchiveEntry> entriesOf(const TensorArchive& archive) {
  std::vector<ArchiveEntry> out;
  out.reserve(archive.tensors.size());
  for (auto& [name, t] : archive.tensors)
    out.push_back({name, t.scalar_type(), t.sizes().vec(), 0, static_cast<uint64_t>(t.nbytes())});
  return out;
}

// The model of an archive, its tensors adopted from the archive (`adopt`: Tensor::set_data, no copy)
// or copied.
std::unique_ptr<Automodulator> buildModel(const TensorArchive& archive, const std::string& source,
                                          const LoadOptions& options, bool adopt) {
  auto model = uninitialisedModel(archive.header, entriesOf(archive), source);
  std::unordered_map<std::string, const torch::Tensor*> by_name;
  for (auto& [name, t] : archive.tensors) by_name.emplace(name, &t);
  const auto state = namedState(*model);
  // NaN or infinite weights (a diverged training run) make every image black: refuse, or warn. A sum
  // of finite numbers is finite unless it overflows, and a NaN or infinity anywhere makes it
  // non-finite, so one reduction per tensor (no allocation) clears the usual case; only a tensor whose
  // sum is not finite is counted element by element.
  {
    std::string first;
    int64_t first_bad = 0, first_numel = 0;
    int bad = 0;
    for (auto& [name, t] : state) {
      const auto& s = *by_name.at(name);
      if (!s.is_floating_point() || std::isfinite(s.sum().item<double>())) continue;
      auto finite = torch::isfinite(s);
      if (finite.all().item<bool>()) continue;
      if (bad++ == 0) first = name, first_bad = (~finite).sum().item<int64_t>(), first_numel = s.numel();
    }
    if (bad > 0) {
      const std::string what = source + " holds weights that are not numbers (NaN or infinite): tensor '" + first +
                               "' has " + std::to_string(first_bad) + " of " + std::to_string(first_numel) +
                               (bad > 1 ? " (and " + std::to_string(bad - 1) + " more tensors)" : std::string());
      if (!options.allow_nonfinite)
        throw Error(what + "; the training run that saved it diverged: use an earlier checkpoint, or allow non-finite "
                           "weights (automod --allow-nonfinite) to inspect it");
      if (options.warn) options.warn(what + "; loaded anyway: its images will be black or garbage");
    }
  }
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : state) {
      const auto& s = *by_name.at(name);
      // The parameter keeps its identity (the modules hold it) and takes the archive tensor's storage.
      if (adopt && s.device().is_cpu() && s.is_contiguous())
        t.set_data(s);
      else
        t.copy_(s);
    }
  }
  model->to(options.device);
  return model;
}

}  // namespace

std::unique_ptr<Automodulator> modelFromArchive(const TensorArchive& archive, const std::string& source,
                                                torch::Device device) {
  LoadOptions options;
  options.device = device;
  return modelFromArchive(archive, source, options);
}

std::unique_ptr<Automodulator> modelFromArchive(const TensorArchive& archive, const std::string& source,
                                                const LoadOptions& options) {
  return buildModel(archive, source, options, /*adopt=*/false);
}

std::unique_ptr<Automodulator> modelFromArchive(TensorArchive&& archive, const std::string& source,
                                                torch::Device device) {
  LoadOptions options;
  options.device = device;
  return modelFromArchive(std::move(archive), source, options);
}

std::unique_ptr<Automodulator> modelFromArchive(TensorArchive&& archive, const std::string& source,
                                                const LoadOptions& options) {
  TensorArchive owned = std::move(archive);  // the model takes its tensors; the caller's archive is emptied
  return buildModel(owned, source, options, /*adopt=*/true);
}

std::unique_ptr<Automodulator> loadModel(const std::filesystem::path& path, const LoadOptions& options) {
  return modelFromArchive(readArchive(path, options.storage), path.string(), options);
}

std::unique_ptr<Automodulator> loadModel(const std::filesystem::path& path, torch::Device device) {
  LoadOptions options;
  options.device = device;
  return loadModel(path, options);
}

nlohmann::json describeModelFile(const std::filesystem::path& path, const LoadOptions& options, bool verify) {
  ArchiveHeader file;
  std::unique_ptr<Automodulator> model;
  try {
    file = readArchiveHeader(path);
    model = verify ? modelFromArchive(readArchive(path, options.storage), path.string(), options)
                   : uninitialisedModel(file.header, file.tensors, path.string());
  } catch (const Error&) {
    // A header that reads but does not describe a model may be a damaged one: the whole file's
    // checksum tells, and loading it says what loadModel would.
    if (verify) throw;
    return describeModelFile(path, options, true);
  }
  const auto& header = file.header;
  nlohmann::json j;
  j["file"] = path.string();
  auto kind = header.find("kind");
  j["kind"] = kind != header.end() && kind->is_string() ? kind->get<std::string>() : std::string("model");
  j["file_bytes"] = file.file_bytes;
  j["format_version"] = file.format_version;
  j["integrity"] = verify ? "verified" : "not verified";
  j["config"] = header.at("config");
  j["stage"] = model->stage();
  if (model->alpha() < 1.0) j["alpha"] = model->alpha();
  j["resolution"] = model->resolution();
  j["decoder_blocks"] = model->numBlocks();
  j["metadata"] = model->metadata;
  int64_t params = 0;
  for (auto& p : model->encoder->parameters()) params += p.numel();
  j["encoder_parameters"] = params;
  params = 0;
  for (auto& p : model->decoder->parameters()) params += p.numel();
  j["decoder_parameters"] = params;
  if (header.contains("training")) j["training"] = header.at("training");
  return j;
}

}  // namespace automod
