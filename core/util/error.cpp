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

}  // namespace

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
  return outOfMemorySentence(what, requestedBytes(e), rawText(e).find("CUDA") != std::string::npos);
}

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
