#include "core/util/error.h"

#include <c10/util/Exception.h>

namespace automod {

std::string errorMessage(const std::exception& e) {
  std::string msg;
  if (auto* ce = dynamic_cast<const c10::Error*>(&e)) {
    msg = ce->what_without_backtrace();
  } else {
    msg = e.what();
  }
  // Keep the first line only: c10 messages may carry context lines below.
  if (auto nl = msg.find('\n'); nl != std::string::npos && nl > 0) msg.resize(nl);
  return msg;
}

}  // namespace automod
