#include "core/util/error.h"

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <cstdlib>
#include <cmath>
#include <cstdio>
#include <new>
#include <string_view>

#ifdef AUTOMOD_HAVE_OPENCV
#include <opencv2/core.hpp>
#endif

namespace automod {
namespace {

std::string firstLine(std::string_view msg) {
  const auto nl = msg.find('\n');
  return std::string(nl != std::string_view::npos && nl > 0 ? msg.substr(0, nl) : msg);
}

// LibTorch's text without the C++ backtrace (what() of a c10::Error carries one).
std::string rawText(const std::exception& e) {
  if (auto* ce = dynamic_cast<const c10::Error*>(&e)) return ce->what_without_backtrace();
  return e.what();
}

// "[enforce fail at alloc_cpu.cpp:75] data. DefaultCPUAllocator: ..." → "DefaultCPUAllocator: ...".
std::string withoutEnforcePrefix(std::string msg) {
  if (msg.rfind("[enforce fail at ", 0) == 0) {
    auto close = msg.find("] ");
    if (close != std::string::npos) msg.erase(0, close + 2);
    // CAFFE_ENFORCE repeats the failed condition ("data. "): drop it when a sentence follows.
    if (auto dot = msg.find(". "); dot != std::string::npos && dot < 40) msg.erase(0, dot + 2);
  }
  return msg;
}

// The number after "allocate " in an allocator's message: "you tried to allocate 4398046511104 bytes"
// (CPU) or "Tried to allocate 2.00 GiB" (CUDA).
uint64_t parseAllocation(const std::string& msg) {
  for (std::string key : {"tried to allocate ", "Tried to allocate "}) {
    auto at = msg.find(key);
    if (at == std::string::npos) continue;
    const char* s = msg.c_str() + at + key.size();
    char* end = nullptr;
    const double v = std::strtod(s, &end);
    if (end == s || !(v >= 0) || v > 1.8e19) return 0;
    std::string_view unit(end);
    while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
    double mult = 1;
    if (unit.rfind("KiB", 0) == 0) mult = 1024.0;
    else if (unit.rfind("MiB", 0) == 0) mult = 1024.0 * 1024;
    else if (unit.rfind("GiB", 0) == 0) mult = 1024.0 * 1024 * 1024;
    else if (unit.rfind("TiB", 0) == 0) mult = 1024.0 * 1024 * 1024 * 1024;
    const double bytes = v * mult;
    return bytes < 1.8e19 ? static_cast<uint64_t>(bytes) : 0;
  }
  return 0;
}

bool mentionsAllocation(const std::string& msg) {
  return msg.find("tried to allocate") != std::string::npos || msg.find("Tried to allocate") != std::string::npos ||
         msg.find("out of memory") != std::string::npos || msg.find("not enough memory") != std::string::npos ||
         msg.find("can't allocate memory") != std::string::npos;
}

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

bool isOutOfMemory(const std::exception& e) {
  if (dynamic_cast<const std::bad_alloc*>(&e)) return true;
  if (dynamic_cast<const c10::OutOfMemoryError*>(&e)) return true;
  if (dynamic_cast<const c10::Error*>(&e)) return mentionsAllocation(rawText(e));
  return false;
}

uint64_t requestedBytes(const std::exception& e) {
  if (!isOutOfMemory(e) || dynamic_cast<const std::bad_alloc*>(&e)) return 0;
  return parseAllocation(rawText(e));
}

std::string outOfMemoryMessage(const std::exception& e, const std::string& what) {
  const bool gpu = rawText(e).find("CUDA") != std::string::npos;
  std::string msg = std::string("not enough ") + (gpu ? "GPU " : "") + "memory to " + what;
  if (const uint64_t n = requestedBytes(e)) msg += ": it asks for " + byteCount(n);
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

std::string errorMessage(const std::exception& e) {
  if (dynamic_cast<const Error*>(&e)) return firstLine(e.what());
  if (isOutOfMemory(e)) return outOfMemoryMessage(e, "finish this operation");
  if (dynamic_cast<const nlohmann::json::exception*>(&e)) return "the JSON data is not as expected: " + jsonErrorText(e);
#ifdef AUTOMOD_HAVE_OPENCV
  if (dynamic_cast<const cv::Exception*>(&e))
    return "the image could not be processed: it is not an image, is damaged or is too large (run with --verbose for "
           "OpenCV's message)";
#endif
  // TORCH_CHECKs carry our own sentences; keep their first line without LibTorch's tags.
  return firstLine(withoutEnforcePrefix(rawText(e)));
}

std::string errorDetail(const std::exception& e) {
  if (auto* ae = dynamic_cast<const Error*>(&e)) return ae->detail();
  std::string raw = rawText(e);
  while (!raw.empty() && (raw.back() == '\n' || raw.back() == ' ')) raw.pop_back();
  return raw == errorMessage(e) ? std::string() : raw;
}

}  // namespace automod
