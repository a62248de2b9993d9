#pragma once
// Helpers shared by the widget tests: a tiny model that decodes visibly different images, test
// photos, and simulated drops from the file manager.
#include <QApplication>
#include <QImage>

#include <cmath>
#include <limits>
#include <QDropEvent>
#include <QMimeData>
#include <QTest>
#include <QUrl>

#include "testutil.h"

namespace automod::test {

/// A tiny 64 px model (5 blocks: every range) whose latents give clearly different images.
inline std::shared_ptr<Automodulator> expressiveTinyModel() {
  std::shared_ptr<Automodulator> m(tinyModel(64, 3));
  makeExpressive(*m);
  return m;
}

/// `n` seeded test photos (width × height) written into `dir`.
inline QStringList writeTestPhotos(const QTemporaryDir& dir, int n, int width, int height, uint64_t first_seed) {
  QStringList photos;
  for (int i = 0; i < n; ++i) {
    const auto p = tmpPath(dir, "photo" + std::to_string(i) + ".png");
    writeTestImage(p, width, height, first_seed + static_cast<uint64_t>(i));
    photos << QString::fromStdString(p.string());
  }
  return photos;
}

/// Mean absolute difference of two images' RGB levels (0–255); ∞ when their sizes differ.
inline double meanAbsDifference(const QImage& a, const QImage& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  const QImage x = a.convertToFormat(QImage::Format_RGB888), y = b.convertToFormat(QImage::Format_RGB888);
  double sum = 0;
  for (int row = 0; row < x.height(); ++row) {
    const uchar* p = x.constScanLine(row);
    const uchar* q = y.constScanLine(row);
    for (int i = 0; i < x.width() * 3; ++i) sum += std::abs(int(p[i]) - int(q[i]));
  }
  return sum / (double(x.width()) * x.height() * 3);
}

/// Drags `mime` onto `target` and drops it there; both events must be accepted.
inline void sendDrop(QWidget* target, QMimeData& mime) {
  QDragEnterEvent enter(QPoint(5, 5), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
  QApplication::sendEvent(target, &enter);
  QVERIFY(enter.isAccepted());
  QDropEvent drop(QPointF(5, 5), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
  QApplication::sendEvent(target, &drop);
  QVERIFY(drop.isAccepted());
}

/// Files dropped from the file manager.
inline void dropFiles(QWidget* target, const QStringList& files) {
  QMimeData mime;
  QList<QUrl> urls;
  for (const auto& f : files) urls << QUrl::fromLocalFile(f);
  mime.setUrls(urls);
  sendDrop(target, mime);
}

}  // namespace automod::test
