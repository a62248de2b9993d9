#include "core/util/json_limits.h"

#include <cmath>
#include <fstream>
#include <istream>
#include <limits>
#include <utility>
#include <vector>

#include "core/util/error.h"

namespace automod {

void checkJsonLimits(std::string_view text, const std::string& what, const JsonLimits& limits) {
  if (text.size() > limits.max_bytes)
    throw Error(what + " is too large (" + byteCount(text.size()) + "; at most " + byteCount(limits.max_bytes) +
                " of JSON are read): it is not a file this program wrote");
  int depth = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    switch (c) {
      case '"': in_string = true; break;
      case '[':
      case '{':
        if (++depth > limits.max_depth)
          throw Error(what + " is not valid JSON: nested more than " + std::to_string(limits.max_depth) +
                      " levels deep (the file is damaged or was not written by this program)");
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;  // unbalanced text is the parser's to report
        break;
      default: break;
    }
  }
}

nlohmann::json parseJsonLimited(std::string_view text, const std::string& what, const JsonLimits& limits) {
  checkJsonLimits(text, what, limits);
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    std::string where = jsonErrorText(e);  // "the text is not valid JSON (at line 1, column 2: ...)"
    const auto open = where.find('(');
    throw Error(what + " is not valid JSON " + (open == std::string::npos ? "" : where.substr(open)), e.what());
  } catch (const nlohmann::json::exception& e) {  // e.g. a number too large for a double (1e999)
    throw Error(what + " is not valid JSON: " + jsonErrorText(e), e.what());
  }
}

nlohmann::json parseJsonLimited(std::istream& in, const std::string& what, const JsonLimits& limits) {
  std::string text;
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    text.append(buf.data(), static_cast<size_t>(in.gcount()));
    if (text.size() > limits.max_bytes) break;  // checkJsonLimits reports it
  }
  if (in.bad()) throw Error("cannot read " + what + ": a read error occurred");
  return parseJsonLimited(text, what, limits);
}

nlohmann::json readJsonFile(const std::filesystem::path& path, const std::string& what, const JsonLimits& limits) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + what + ": no such file or no permission");
  return parseJsonLimited(in, what, limits);
}

int jsonDepth(const nlohmann::json& j) {
  int deepest = 0;
  std::vector<std::pair<const nlohmann::json*, int>> todo{{&j, 0}};
  while (!todo.empty()) {
    auto [v, d] = todo.back();
    todo.pop_back();
    if (!v->is_structured()) continue;
    deepest = std::max(deepest, d + 1);
    for (const auto& child : *v) todo.emplace_back(&child, d + 1);
  }
  return deepest;
}

int jsonInt(const nlohmann::json& value, const std::string& where, const std::string& key, int lo, int hi) {
  const std::string expected = where + ": field '" + key + "' must be a whole number from " + std::to_string(lo) +
                               " to " + std::to_string(hi);
  if (value.is_number_unsigned()) {
    const auto v = value.get<uint64_t>();
    if (hi < 0 || v > static_cast<uint64_t>(hi)) throw Error(expected);
    if (static_cast<int64_t>(v) < lo) throw Error(expected);
    return static_cast<int>(v);
  }
  if (!value.is_number_integer()) throw Error(expected);
  const auto v = value.get<int64_t>();
  if (v < lo || v > hi) throw Error(expected);
  return static_cast<int>(v);
}

float jsonFloat(const nlohmann::json& value, const std::string& where, const std::string& key) {
  if (!value.is_number()) throw Error(where + ": field '" + key + "' must hold numbers");
  const double v = value.get<double>();
  if (!std::isfinite(v) || std::abs(v) > static_cast<double>(std::numeric_limits<float>::max()))
    throw Error(where + ": field '" + key + "' holds a number too large for a float");
  return static_cast<float>(v);
}

}  // namespace automod
