#include "core/io/model_header.h"

#include <algorithm>
#include <climits>

#include "core/util/error.h"

namespace automod {
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

}  // namespace

ModelHeader parseModelHeader(const nlohmann::json& h, const std::vector<ArchiveEntry>& tensors, const std::string& source) {
  auto format = h.find("format");
  if (!h.is_object() || format == h.end() || *format != "automodulator" || !h.contains("config"))
    throw Error(source + " is an archive but not an automodulator model");
  checkConfigFields(h.at("config"), source);
  ModelHeader out;
  try {
    out.config = ModelConfig::fromJson(h.at("config"));
  } catch (const Error& e) {
    throw Error(source + ": " + withoutJsonCodes(e.what()));
  }
  const ModelConfig& config = out.config;
  out.stage = config.numBlocks() - 1;
  if (auto it = h.find("stage"); it != h.end()) {
    if (!isWholeNumber(*it)) throw Error(source + ": the header field 'stage' is not a whole number");
    out.stage = it->get<int>();
  }
  if (out.stage < 0 || out.stage >= config.numBlocks())
    throw Error(source + ": stage " + std::to_string(out.stage) + " is invalid");
  if (auto it = h.find("alpha"); it != h.end()) {
    if (!it->is_number() || !(it->get<double>() >= 0.0 && it->get<double>() <= 1.0) || (out.stage == 0 && *it != 1.0))
      throw Error(source + ": the header field 'alpha' is not a fade-in weight from 0 to 1");
    out.alpha = it->get<double>();
  }
  uint64_t held = 0;
  for (auto& t : tensors) held += t.nbytes;
  if (const uint64_t need = minimumModelBytes(config); need > held)
    throw Error(source + " does not match its config: the config describes a model of at least " + byteCount(need) +
                " but the file holds " + byteCount(held) + " of tensors");
  out.metadata = h.value("metadata", nlohmann::json::object());
  return out;
}

nlohmann::json describeModelHeader(const std::filesystem::path& path, const ArchiveHeader& file, bool verified) {
  const auto& header = file.header;
  const ModelHeader mh = parseModelHeader(header, file.tensors, path.string());
  nlohmann::json j;
  j["file"] = path.string();
  auto kind = header.find("kind");
  j["kind"] = kind != header.end() && kind->is_string() ? kind->get<std::string>() : std::string("model");
  j["file_bytes"] = file.file_bytes;
  j["format_version"] = file.format_version;
  j["integrity"] = verified ? "verified" : "not verified";
  j["config"] = header.at("config");
  j["stage"] = mh.stage;
  if (mh.alpha < 1.0) j["alpha"] = mh.alpha;
  j["resolution"] = ModelConfig::blockResolution(mh.stage);
  j["decoder_blocks"] = mh.config.blocksAtStage(mh.stage);
  j["metadata"] = mh.metadata;
  // Parameters, as the networks count them: every tensor of the encoder and decoder except the
  // spectral norms' power-iteration vectors u and v (buffers).
  auto count = [&](const std::string& prefix) {
    int64_t n = 0;
    for (const auto& t : file.tensors) {
      if (t.name.rfind(prefix, 0) != 0) continue;
      const auto dot = t.name.rfind('.');
      const auto leaf = dot == std::string::npos ? t.name : t.name.substr(dot + 1);
      if (leaf == "u" || leaf == "v") continue;
      n += t.numel();
    }
    return n;
  };
  j["encoder_parameters"] = count("encoder.");
  j["decoder_parameters"] = count("decoder.");
  if (header.contains("training")) j["training"] = header.at("training");
  return j;
}

}  // namespace automod
