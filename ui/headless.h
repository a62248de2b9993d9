#pragma once
// `automod-studio --headless --out DIR`: the editor's main job without a display — load the model,
// encode the photos (default: the bundled samples), write their reconstructions and a coarse/fine mix.
#include <QString>
#include <QStringList>

namespace automod::ui {
/// Returns the process exit code; messages go to stderr.
int runHeadless(const QString& modelPath, const QString& outDir, const QStringList& photos);
/// The bundled sample photos (resources/samples in the source tree or share/automod-studio/samples).
QStringList samplePhotos();
}  // namespace automod::ui
