#include "ui/model_lookup.h"

#include <QCoreApplication>
#include <QFileInfo>

namespace automod::ui {

QString defaultModelFile() {
  const QString app_dir = QCoreApplication::instance() ? QCoreApplication::applicationDirPath() : QString();
  for (const QString& p : {QString(AUTOMOD_SOURCE_DIR) + "/models/default.amod",
                           app_dir + "/../share/automod-studio/models/default.amod",
                           QStringLiteral("/usr/share/automod-studio/models/default.amod"),
                           QStringLiteral("models/default.amod")})
    if (QFileInfo::exists(p)) return QFileInfo(p).absoluteFilePath();
  return {};
}

}  // namespace automod::ui
