#pragma once
// Errors that reach the user. Everything the user can cause (a bad file, a bad option) is thrown as
// automod::Error with a message that says what went wrong and what to do; programming mistakes use
// TORCH_CHECK. errorMessage() turns any exception into one line for the CLI and the GUI.
#include <stdexcept>
#include <string>

namespace automod {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One line, without LibTorch's C++ backtrace.
std::string errorMessage(const std::exception& e);

}  // namespace automod
