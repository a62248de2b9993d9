#pragma once
// Where the bundled default model lives (the same places as the CLI's defaultModelPath()).
#include <QString>

namespace automod::ui {
/// Empty when no trained default model is installed.
QString defaultModelFile();
}  // namespace automod::ui
