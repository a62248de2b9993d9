// libFuzzer entry point for the torch.save reader: every input must either read or throw
// automod::Error. Any other exception escapes and aborts, which libFuzzer reports as a crash, as it
// does for sanitizer findings, timeouts and excessive memory. See CMakeLists.txt for how to run it.
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/io/torch_file.h"
#include "core/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const automod::TorchFile f = automod::readTorchBytes(std::span<const uint8_t>(data, size), "fuzz input");
    if (!f.root) __builtin_trap();  // a read that "succeeds" must give a value
  } catch (const automod::Error&) {
  }
  return 0;
}
