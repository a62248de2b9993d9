#include "core/edit/sources.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "core/io/image.h"
#include "core/util/error.h"
#include "core/util/json_limits.h"

namespace automod {
namespace fs = std::filesystem;
namespace {

uint64_t fnv1a(const void* data, size_t size, uint64_t h = 1469598103934665603ull) {
  auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

std::string hex(uint64_t v) {
  std::ostringstream s;
  s << std::hex << v;
  return s.str();
}

torch::Tensor latentFromJson(const nlohmann::json& j, const std::string& where) {
  if (!j.is_array() || j.empty()) throw Error(where + ": a latent must be a non-empty list of numbers");
  std::vector<float> v;
  for (auto& x : j) {
    if (!x.is_number()) throw Error(where + ": a latent must be a list of numbers");
    v.push_back(jsonFloat(x, where, "latent"));
  }
  return torch::tensor(v, torch::kFloat32);
}

std::vector<float> floats(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous().reshape({-1});
  return {c.data_ptr<float>(), c.data_ptr<float>() + c.numel()};
}

// Stored per-block codes [blocks, D] as the model's plan: one [1, D] unit code per block.
LatentPlan storedCodes(const torch::Tensor& blocks, Automodulator& model, const std::string& what) {
  const int nb = model.numBlocks();
  const int64_t dim = model.config().latent_dim;
  if (blocks.size(0) != nb)
    throw Error(what + " holds codes for " + std::to_string(blocks.size(0)) + " blocks but the model has " +
                std::to_string(nb) + " (they were refined with another model)");
  if (blocks.size(1) != dim)
    throw Error(what + " holds " + std::to_string(blocks.size(1)) + "-d codes but the model uses " +
                std::to_string(dim) + "-d ones");
  LatentPlan plan;
  auto z = blocks.to(torch::kFloat32).to(model.device());
  for (int b = 0; b < nb; ++b) {
    auto row = z[b].reshape({1, dim});
    // Codes that are on the sphere already (as refinement writes them) are used bit for bit.
    if (std::abs(row.norm().item<double>() - 1.0) > 1e-5) row = normaliseLatent(row);
    plan.latents.push_back(row);
  }
  return plan;
}

}  // namespace

std::vector<std::vector<float>> offsetValues(const LatentPlan& codes) {
  if (!codes.hasOffsets()) return {};
  std::vector<std::vector<float>> out;
  for (int b = 0; b < codes.size(); ++b) {
    auto o = codes.offset(b);
    out.push_back(o.defined() ? floats(o[0]) : std::vector<float>{});
  }
  return out;
}

std::vector<std::vector<float>> offsetValuesFromJson(const nlohmann::json& j, const std::string& where) {
  if (!j.is_array() || j.size() > 64) throw Error(where + ": style offsets are a list of up to 64 lists of numbers, one per block");
  std::vector<std::vector<float>> out;
  for (auto& block : j) {
    if (!block.is_array() || block.size() > 65536)
      throw Error(where + ": each block's style offsets are a list of up to 65536 numbers");
    std::vector<float> v;
    v.reserve(block.size());
    for (auto& x : block) {
      if (!x.is_number()) throw Error(where + ": style offsets are numbers");
      v.push_back(jsonFloat(x, where, "style offsets"));
    }
    out.push_back(std::move(v));
  }
  return out;
}

void setOffsetValues(LatentPlan& codes, const std::vector<std::vector<float>>& values, const std::vector<int64_t>& widths,
                     const std::string& what) {
  if (values.empty()) return;
  if (static_cast<int>(values.size()) != codes.size())
    throw Error(what + " holds style offsets for " + std::to_string(values.size()) + " blocks but its codes have " +
                std::to_string(codes.size()) + " (they were refined with another model)");
  for (int b = 0; b < codes.size(); ++b) {
    const auto& v = values[static_cast<size_t>(b)];
    if (v.empty()) {
      codes.setOffset(b, {});
      continue;
    }
    if (!widths.empty() && (b >= static_cast<int>(widths.size()) || static_cast<int64_t>(v.size()) != widths[b]))
      throw Error(what + " holds " + std::to_string(v.size()) + " style offsets for block " + std::to_string(b) +
                  " but the model's block has " + (b < static_cast<int>(widths.size()) ? std::to_string(widths[b]) : "none") +
                  " styles (they were refined with another model)");
    codes.setOffset(b, torch::tensor(v, torch::kFloat32).reshape({1, -1}).to(codes[b].device()));
  }
}

std::vector<int64_t> styleWidths(Automodulator& model) {
  auto widths = model.ema->styleWidths();
  widths.resize(static_cast<size_t>(model.numBlocks()));
  return widths;
}

SourceSpec SourceSpec::inlineCodes(const torch::Tensor& z, const LatentPlan& codes) {
  std::vector<std::vector<float>> blocks;
  for (auto& c : codes.latents) blocks.push_back(floats(c));
  return inlineCode(floats(z), std::move(blocks), offsetValues(codes));
}

SourceSpec SourceSpec::parse(const std::string& text) {
  if (text.empty()) throw Error("empty source: give a photo, a latent file (.json) or seed:N");
  for (const char* prefix : {"seed:", "random:"}) {
    const std::string p = prefix;
    if (text.rfind(p, 0) == 0) {
      const auto n = text.substr(p.size());
      if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos)
        throw Error("bad source '" + text + "': a random code is seed:N with N a non-negative integer");
      return random(std::stoull(n));
    }
  }
  fs::path path = text;
  int index = 0;
  const auto hash = text.rfind('#');
  if (hash != std::string::npos && hash + 1 < text.size() &&
      text.find_first_not_of("0123456789", hash + 1) == std::string::npos && !fs::exists(path)) {
    path = text.substr(0, hash);
    index = std::stoi(text.substr(hash + 1));
  }
  auto ext = path.extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext == ".json") return latentFile(path, index);
  return photo(path);
}

std::string SourceSpec::describe() const {
  switch (kind) {
    case Kind::Random: return "seed:" + std::to_string(seed);
    case Kind::Latent: return path.string() + (index ? "#" + std::to_string(index) : "");
    case Kind::Code:
      return "a " + std::to_string(code.size()) + "-d code" + (block_codes.empty() ? "" : " refined per block");
    case Kind::Photo: break;
  }
  return path.string() + (center_crop ? " (centre crop)" : face > 0 ? " (face " + std::to_string(face) + ")" : "");
}

void writeLatentFile(const fs::path& path, const std::vector<LatentRecord>& latents, int resolution) {
  nlohmann::json j;
  j["resolution"] = resolution;
  j["latent_dim"] = latents.empty() ? 0 : latents.front().z.numel();
  j["latents"] = nlohmann::json::array();
  for (auto& r : latents) {
    nlohmann::json e = {{"source", r.source}, {"z", floats(r.z)}};
    if (r.z_blocks.defined()) {
      e["z_blocks"] = nlohmann::json::array();
      for (int64_t b = 0; b < r.z_blocks.size(0); ++b) e["z_blocks"].push_back(floats(r.z_blocks[b]));
      if (!r.z_offsets.empty()) e["z_offsets"] = r.z_offsets;
    }
    j["latents"].push_back(e);
  }
  std::ofstream f(path);
  if (!f) throw Error("cannot write " + path.string());
  f << j.dump() << "\n";
  if (!f) throw Error("cannot write " + path.string());
}

std::vector<LatentRecord> readLatentFile(const fs::path& path) {
  std::ifstream f(path);
  if (!f) throw Error("cannot read latent file " + path.string() + ": no such file or no permission");
  nlohmann::json j = parseJsonLimited(f, "latent file " + path.string());
  const std::string where = "latent file " + path.string();
  std::vector<LatentRecord> out;
  if (j.is_array() && !j.empty() && j.front().is_number()) {
    out.push_back({path.filename().string(), latentFromJson(j, where)});
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i)
      out.push_back({path.filename().string() + "#" + std::to_string(i), latentFromJson(j[i], where)});
  } else if (j.is_object() && j.contains("latents") && j["latents"].is_array()) {
    for (auto& r : j["latents"]) {
      if (!r.is_object() || !r.contains("z")) throw Error(where + ": each entry of 'latents' needs a 'z' list");
      LatentRecord record{r.value("source", std::string()), latentFromJson(r["z"], where + ": latents[].z"), {}};
      if (r.contains("z_blocks")) {
        const auto& blocks = r["z_blocks"];
        if (!blocks.is_array() || blocks.empty() || blocks.size() > 64)
          throw Error(where + ": latents[].z_blocks must be a list of 1 to 64 codes, one per decoder block");
        std::vector<torch::Tensor> rows;
        for (auto& b : blocks) {
          rows.push_back(latentFromJson(b, where + ": latents[].z_blocks"));
          if (rows.back().numel() != record.z.numel())
            throw Error(where + ": latents[].z_blocks holds codes of another size than its 'z'");
        }
        record.z_blocks = torch::stack(rows);
        if (r.contains("z_offsets")) {
          record.z_offsets = offsetValuesFromJson(r["z_offsets"], where + ": latents[].z_offsets");
          if (record.z_offsets.size() != rows.size())
            throw Error(where + ": latents[].z_offsets needs one list per block of z_blocks");
        }
      } else if (r.contains("z_offsets")) {
        throw Error(where + ": latents[].z_offsets (style offsets) go with per-block codes z_blocks");
      }
      out.push_back(std::move(record));
    }
  } else {
    throw Error(where + ": expected a list of numbers or an object with a 'latents' list");
  }
  if (out.empty()) throw Error(where + " holds no latents");
  return out;
}

std::vector<fs::path> imageFilesIn(const fs::path& folder) {
  std::error_code ec;
  if (fs::is_regular_file(folder, ec)) return {folder};
  if (!fs::is_directory(folder, ec)) throw Error("no such folder: " + folder.string());
  std::vector<fs::path> out;
  for (auto& e : fs::directory_iterator(folder, ec))
    if (e.is_regular_file() && isImageFile(e.path())) out.push_back(e.path());
  if (ec) throw Error("cannot list " + folder.string() + ": " + ec.message());
  std::sort(out.begin(), out.end());
  if (out.empty()) throw Error("no image files in " + folder.string());
  return out;
}

uint64_t hashFile(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot read " + path.string() + ": no such file or no permission");
  std::vector<char> buf(1 << 16);
  uint64_t h = 1469598103934665603ull;
  while (f) {
    f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h = fnv1a(buf.data(), static_cast<size_t>(f.gcount()), h);
  }
  return h;
}

std::string modelIdentity(Automodulator& model) {
  const auto cfg = model.config().toJson().dump();
  uint64_t h = fnv1a(cfg.data(), cfg.size());
  const int stage = model.stage();
  h = fnv1a(&stage, sizeof stage, h);
  // A sample of weights from both networks: cheap, and any training step changes them.
  auto sample = [&](torch::nn::Module& m) {
    for (auto& p : m.parameters()) {
      auto t = p.detach().reshape({-1});
      t = t.narrow(0, 0, std::min<int64_t>(t.numel(), 4096)).to(torch::kCPU, torch::kFloat32).contiguous();
      h = fnv1a(t.data_ptr<float>(), sizeof(float) * t.numel(), h);
    }
  };
  sample(*model.encoder);
  sample(*model.ema);
  return hex(h);
}

SourceCache::SourceCache(Automodulator& model, PhotoOptions photo_options, RefineOptions refine)
    : model_(model), photo_options_(photo_options), identity_(modelIdentity(model)), refine_(refine) {
  refine_.validate();
}

void SourceCache::clear() { entries_.clear(); }

SourceCache::Entry& SourceCache::photoEntry(const SourceSpec& source) {
  PhotoOptions options = photo_options_;
  if (source.face >= 0) options.face = source.face;
  if (source.center_crop) options.align = false;
  const std::string key = hex(hashFile(source.path)) + "|" + photoOptionsKey(options) + "|" + identity_;
  auto it = entries_.find(key);
  if (it != entries_.end()) return it->second;
  auto prepared = preparePhoto(source.path, model_.resolution(), model_.config().image_channels, options);
  last_note_ = prepared.note;
  Entry e;
  e.image = prepared.image;
  e.z = model_.encode(toModelInput(prepared.image));
  ++encodes_;
  return entries_.emplace(key, std::move(e)).first->second;
}

torch::Tensor SourceCache::photoImage(const SourceSpec& source) {
  if (source.kind != SourceSpec::Kind::Photo) {
    torch::NoGradGuard ng;
    return toImage(model_.decode(latent(source)))[0];
  }
  return photoEntry(source).image;
}

torch::Tensor SourceCache::latent(const SourceSpec& source) {
  const int dim = model_.config().latent_dim;
  switch (source.kind) {
    case SourceSpec::Kind::Random: return model_.randomLatents(1, source.seed);
    case SourceSpec::Kind::Latent: {
      auto records = readLatentFile(source.path);
      if (source.index < 0 || source.index >= static_cast<int>(records.size()))
        throw Error("latent file " + source.path.string() + " has " + std::to_string(records.size()) +
                    " latents; #" + std::to_string(source.index) + " does not exist");
      auto z = records[source.index].z;
      if (z.numel() != dim)
        throw Error("latent file " + source.path.string() + " holds " + std::to_string(z.numel()) +
                    "-d latents but the model uses " + std::to_string(dim) + "-d ones");
      return normaliseLatent(z.reshape({1, dim})).to(model_.device());
    }
    case SourceSpec::Kind::Code: {
      if (static_cast<int>(source.code.size()) != dim)
        throw Error("a " + std::to_string(source.code.size()) + "-d code cannot drive a model with " +
                    std::to_string(dim) + "-d latents");
      auto z = torch::tensor(source.code, torch::kFloat32).reshape({1, dim});
      // A code that is on the sphere already (as the editor writes them) is used bit for bit.
      if (std::abs(z.norm().item<double>() - 1.0) > 1e-5) z = normaliseLatent(z);
      return z.to(model_.device());
    }
    case SourceSpec::Kind::Photo: break;
  }
  return photoEntry(source).z;
}

LatentPlan SourceCache::codes(const SourceSpec& source, const RefineOptions& refine) {
  const int nb = model_.numBlocks();
  switch (source.kind) {
    case SourceSpec::Kind::Latent: {
      auto records = readLatentFile(source.path);
      if (source.index >= 0 && source.index < static_cast<int>(records.size()) &&
          records[source.index].z_blocks.defined()) {
        const std::string what = "latent file " + source.path.string();
        auto plan = storedCodes(records[source.index].z_blocks, model_, what);
        setOffsetValues(plan, records[source.index].z_offsets, styleWidths(model_), what);
        return plan;
      }
      break;
    }
    case SourceSpec::Kind::Code: {
      if (source.block_codes.empty()) break;
      latent(source);  // checks the code's size
      std::vector<torch::Tensor> rows;
      for (auto& b : source.block_codes) {
        if (b.size() != source.code.size())
          throw Error("a code source's per-block codes must have the size of its code (" +
                      std::to_string(source.code.size()) + ")");
        rows.push_back(torch::tensor(b, torch::kFloat32));
      }
      auto plan = storedCodes(torch::stack(rows), model_, "the code source");
      setOffsetValues(plan, source.block_offsets, styleWidths(model_), "the code source");
      return plan;
    }
    case SourceSpec::Kind::Photo: {
      if (!refine.enabled()) break;
      refine.validate();
      auto& entry = photoEntry(source);
      const std::string key = refine.toJson().dump();
      auto it = entry.refined.find(key);
      if (it != entry.refined.end()) {
        last_refine_ = it->second.stats;
        return it->second.codes;
      }
      auto result = refineCodes(model_, toModelInput(entry.image), entry.z, refine, refine_progress_);
      ++refines_;
      RefineStats stats{result.psnr_before.at(0), result.psnr_after.at(0), result.steps_run, result.cancelled};
      last_refine_ = stats;
      if (!result.cancelled) entry.refined.emplace(key, Refined{result.codes, stats});
      return result.codes;
    }
    case SourceSpec::Kind::Random: break;
  }
  return LatentPlan::uniform(latent(source), nb);
}

}  // namespace automod
