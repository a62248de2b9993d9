#include "ui/file_dialogs.h"

#include <QDir>
#include <QObject>
#include <QFileInfo>
#include <QRegularExpression>
#include <QSettings>
#include <QStandardPaths>

namespace automod::ui {

QString startDirectory(const QString& purpose) {
  const QString last = QSettings().value("dirs/" + purpose).toString();
  if (!last.isEmpty() && QFileInfo(last).isDir()) return last;
  const QString pictures = QStandardPaths::writableLocation(QStandardPaths::PicturesLocation);
  if (!pictures.isEmpty() && QFileInfo(pictures).isDir()) return pictures;
  return QDir::homePath();
}

QString startPath(const QString& purpose, const QString& fileName) {
  return QDir(startDirectory(purpose)).filePath(fileName);
}

void rememberDirectory(const QString& purpose, const QString& path) {
  if (path.isEmpty()) return;
  const QFileInfo info(path);
  QSettings().setValue("dirs/" + purpose, info.isDir() ? info.absoluteFilePath() : info.absolutePath());
}

QString withFilterExtension(const QString& path, const QString& filter) {
  if (path.isEmpty() || !QFileInfo(path).suffix().isEmpty()) return path;
  static const QRegularExpression first(R"(\*\.([A-Za-z0-9]+))");
  const auto m = first.match(filter);
  return m.hasMatch() ? path + '.' + m.captured(1) : path;
}

QString imageSaveFilters() {
  return QObject::tr("PNG images (*.png);;JPEG images (*.jpg *.jpeg);;WebP images (*.webp);;BMP images (*.bmp);;"
                     "TIFF images (*.tif *.tiff)");
}

}  // namespace automod::ui
