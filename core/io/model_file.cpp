#include "core/io/model_file.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>
#include <sstream>
#include <unordered_map>

#include "core/io/model_header.h"
#include "core/util/error.h"
#include "core/util/finite.h"

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

// The model a header describes, built without initialising it (WeightInit::None), after checking that
// `tensors` hold every tensor of it with its shape and type, and no model tensor it does not have.
std::unique_ptr<Automodulator> uninitialisedModel(const nlohmann::json& h, const std::vector<ArchiveEntry>& tensors,
                                                  const std::string& source) {
  const ModelHeader mh = parseModelHeader(h, tensors, source);
  const ModelConfig& config = mh.config;
  const int stage = mh.stage;
  const double alpha = mh.alpha;
  std::unique_ptr<Automodulator> model;
  try {
    model = std::make_unique<Automodulator>(config, torch::kCPU, WeightInit::None);
  } catch (const std::exception& e) {
    if (isOutOfMemory(e)) throw Error(outOfMemoryMessage(e, "build the model of " + source), errorDetail(e));
    throw;
  }
  model->setStage(stage, alpha);
  model->metadata = mh.metadata;

  std::unordered_map<std::string, const ArchiveEntry*> by_name;
  for (auto& t : tensors) by_name.emplace(t.name, &t);
  std::set<std::string> expected;
  for (auto& [name, t] : namedState(*model)) {
    expected.insert(name);
    auto it = by_name.find(name);
    if (it == by_name.end()) throw Error(source + " does not match its config: tensor '" + name + "' is missing");
    const auto& s = *it->second;
    if (!t.sizes().equals(s.shape) || archiveScalarType(s.dtype) != t.scalar_type()) {
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
    out.push_back({name, archiveDtypeName(t.scalar_type()), t.sizes().vec(), 0, static_cast<uint64_t>(t.nbytes())});
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
  // NaN or infinite weights (a diverged training run) make every image black: refuse, or warn.
  {
    std::string first;
    int64_t first_bad = 0, first_numel = 0;
    int bad = 0;
    for (auto& [name, t] : state) {
      const auto& s = *by_name.at(name);
      if (allFinite(s)) continue;
      if (bad++ == 0) first = name, first_bad = countNonFinite(s), first_numel = s.numel();
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
  try {
    file = readArchiveHeader(path);
    // The model is built (uninitialised) to check that the file's tensors are the config's, or, with
    // `verify`, loaded whole: the description itself comes from the header (as the launcher's does).
    if (verify) {
      auto archive = readArchive(path, options.storage);
      file.tensors = entriesOf(archive);
      modelFromArchive(std::move(archive), path.string(), options);
    } else {
      uninitialisedModel(file.header, file.tensors, path.string());
    }
  } catch (const Error&) {
    // A header that reads but does not describe a model may be a damaged one: the whole file's
    // checksum tells, and loading it says what loadModel would.
    if (verify) throw;
    return describeModelFile(path, options, true);
  }
  return describeModelHeader(path, file, verify);
}

}  // namespace automod
