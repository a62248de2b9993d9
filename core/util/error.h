#pragma once
// Errors that reach the user. Everything the user can cause (a bad file, a bad option) is thrown as
// automod::Error with a message that says what went wrong and what to do; programming mistakes use
// TORCH_CHECK. errorMessage() turns any exception into one sentence for the CLI and the GUI: the
// exceptions of the libraries underneath (LibTorch's allocator, nlohmann::json, OpenCV, std::bad_alloc)
// are translated, and their own text is kept for errorDetail() (what `automod --verbose` prints).
// Where a loader knows more (which file, which field) it catches and rethrows automod::Error itself.
#include <cstdint>
#include <stdexcept>
#include <string>

namespace automod {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  /// `message` is the sentence the user reads; `detail` the library text behind it (for --verbose).
  Error(const std::string& message, std::string detail) : std::runtime_error(message), detail_(std::move(detail)) {}
  const std::string& detail() const { return detail_; }

 private:
  std::string detail_;
};

/// One line, without LibTorch's C++ backtrace or a library's internal codes.
std::string errorMessage(const std::exception& e);

/// The library's own text behind errorMessage(e) (an automod::Error's detail, or the raw what() of a
/// library exception); empty when errorMessage already says everything.
std::string errorDetail(const std::exception& e);

/// Bytes an allocation failure asked for: 0 when `e` is not one, or when the size is unknown (then
/// isOutOfMemory() still tells).
uint64_t requestedBytes(const std::exception& e);
/// Whether `e` is an allocation failure (std::bad_alloc, LibTorch's CPU or CUDA allocator).
bool isOutOfMemory(const std::exception& e);
/// "not enough memory to WHAT: it asks for 4398 GB (…)" for an allocation failure.
std::string outOfMemoryMessage(const std::exception& e, const std::string& what);
/// The same sentence from its parts: `bytes` asked for (0: unknown), on the GPU or not.
std::string outOfMemorySentence(const std::string& what, uint64_t bytes, bool gpu);

/// A sentence for an nlohmann::json exception ("the field 'x' is missing", "a field has the wrong type
/// (a number is expected, not a string)"); the plain what() for anything else.
std::string jsonErrorText(const std::exception& e);
/// The same from a message that contains nlohmann's text ("[json.exception.type_error.302] …").
std::string jsonErrorText(const std::string& what);

/// "4.4 TB", "12 GB", "3.1 MB", "512 bytes" (decimal units, as disk sizes are given).
std::string byteCount(uint64_t bytes);

}  // namespace automod
