// The parts of core/util/error.h that need no library beneath (no LibTorch, no OpenCV): byte counts,
// nlohmann::json's messages as sentences, the out-of-memory sentence. The header-only `automod info`
// (app/automod_launcher.cpp) links these alone.
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "core/util/error.h"

namespace automod {
namespace {

// nlohmann's type names: null, object, array, string, boolean, number, binary, discarded.
const char* article(std::string_view type) {
  if (type == "null") return "";
  return type == "object" || type == "array" ? "an " : "a ";
}

// "type must be number, but is string" → "(a number is expected, not a string)".
std::string typeMismatch(const std::string& text) {
  const std::string must = "type must be ", but = ", but is ";
  const auto a = text.find(must), b = text.find(but);
  if (a == std::string::npos || b == std::string::npos || b < a + must.size()) return {};
  std::string_view all(text);
  const auto expected = all.substr(a + must.size(), b - (a + must.size()));
  auto found = all.substr(b + but.size());
  while (!found.empty() && !std::isalpha(static_cast<unsigned char>(found.back()))) found.remove_suffix(1);
  std::string out = "(";
  out.append(article(expected)).append(expected).append(" is expected, not ");
  out.append(article(found)).append(found).append(")");
  return out;
}

// nlohmann's what() is "[json.exception.type_error.302] type must be ...": the part after the tag.
std::string withoutJsonTag(const std::string& msg) {
  if (msg.rfind("[json.exception.", 0) == 0) {
    auto close = msg.find("] ");
    if (close != std::string::npos) return msg.substr(close + 2);
  }
  return msg;
}

}  // namespace

std::string byteCount(uint64_t bytes) {
  char buf[64];
  const double b = static_cast<double>(bytes);
  if (b >= 1e12) std::snprintf(buf, sizeof buf, "%.1f TB", b / 1e12);
  else if (b >= 1e10) std::snprintf(buf, sizeof buf, "%.0f GB", b / 1e9);
  else if (b >= 1e9) std::snprintf(buf, sizeof buf, "%.1f GB", b / 1e9);
  else if (b >= 1e6) std::snprintf(buf, sizeof buf, "%.1f MB", b / 1e6);
  else if (b >= 1e3) std::snprintf(buf, sizeof buf, "%.1f kB", b / 1e3);
  else std::snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(bytes));
  return buf;
}

std::string outOfMemorySentence(const std::string& what, uint64_t bytes, bool gpu) {
  std::string msg = std::string("not enough ") + (gpu ? "GPU " : "") + "memory to " + what;
  if (bytes) msg += ": it asks for " + byteCount(bytes);
  msg += gpu ? " (use a smaller batch or model, or --device cpu)"
             : " (close other programs, use a smaller batch or model, or check that the input is not damaged)";
  return msg;
}

std::string jsonErrorText(const std::string& what) {
  // "[json.exception.KIND.ID] text"
  std::string kind;
  int id = 0;
  if (what.rfind("[json.exception.", 0) == 0) {
    const auto close = what.find(']');
    const auto tag = what.substr(16, close == std::string::npos ? 0 : close - 16);  // "type_error.302"
    const auto dot = tag.rfind('.');
    kind = tag.substr(0, dot);
    if (dot != std::string::npos) id = std::atoi(tag.c_str() + dot + 1);
  }
  const std::string text = withoutJsonTag(what);
  if (kind == "parse_error") {
    // "parse error at line 1, column 2: syntax error while parsing value - invalid literal; last read: 'x'"
    std::string where = text;
    if (where.rfind("parse error ", 0) == 0) where.erase(0, 12);
    return "the text is not valid JSON (" + where + ")";
  }
  if (kind == "type_error") {
    if (id == 302) {
      auto why = typeMismatch(text);
      return "a field has the wrong type" + (why.empty() ? std::string() : " " + why);
    }
    return "a value has the wrong type";
  }
  if (kind == "out_of_range") {
    if (id == 403) {  // "key 'widths' not found"
      auto a = text.find('\''), b = text.rfind('\'');
      if (a != std::string::npos && b > a) return "the field '" + text.substr(a + 1, b - a - 1) + "' is missing";
      return "a field is missing";
    }
    if (id == 401) return "a list is shorter than expected";
    if (id == 406) return "a number is too large";
    return "a value is out of range";
  }
  if (kind.empty()) return what;
  return "the JSON data does not have the expected layout";
}

std::string jsonErrorText(const std::exception& e) { return jsonErrorText(std::string(e.what())); }

}  // namespace automod
