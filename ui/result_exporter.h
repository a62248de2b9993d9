#pragma once
// Where results go: image files at a chosen size, the result pasted back into the original photo
// (core/align's inverse warp with a feathered mask), and grids of the mix and of the sample gallery.
#include <QImage>
#include <QList>
#include <QObject>
#include <QRect>
#include <QSize>

#include <optional>

namespace automod::ui {

class StudioController;

/// Where an encoded source came from: its photo, the face, and the photo → crop transform (the
/// AlignTransform's JSON), so the edited result can be pasted back into the photo.
struct PhotoOrigin {
  QString path;
  int face = -1;  ///< -1: center crop
  QSize photoSize;
  QByteArray transform;
};

class ResultExporter : public QObject {
  Q_OBJECT
 public:
  explicit ResultExporter(StudioController* controller);

  /// Writes the result in the format its file name's extension names, at `side` × `side` pixels
  /// (upscaled smoothly; ≤ 0: the model's resolution). Says why when it cannot.
  bool exportResult(const QString& path, int side, QString* error = nullptr) const;
  bool exportResult(const QString& path, QString* error = nullptr) const;
  /// The sizes an export offers: the model's resolution, then 256, 512 and 1024 px above it.
  QList<int> exportSides() const;

  /// Where source `index` came from (its photo and alignment), when it was encoded from a photo file.
  std::optional<PhotoOrigin> sourceOrigin(int index) const;
  /// The source whose photo an export pastes into by default: the coarse range's source (the
  /// largest weight in block 0) when it has a photo, else the first source with one; -1 if none.
  int pasteBackSource() const;
  /// The result warped back into source `source`'s photo (-1: pasteBackSource) with a feathered
  /// mask; same size as the photo, pixels outside the face untouched.
  QImage pastedBack(int source = -1, QString* error = nullptr) const;
  bool exportPastedBack(const QString& path, int source = -1, QString* error = nullptr) const;
  /// One image: the sources' photos over their reconstructions (captioned with their names, rows
  /// labelled), and the result at the right; cells of at least 128 px.
  QImage mixGrid() const;
  /// Where mixGrid() draws column `column`'s image in row `row` (0: photos, 1: reconstructions; the
  /// last column, sources().size(), is the result); empty without a result.
  QRect mixGridCell(int column, int row) const;
  /// The sample gallery as one image (rows of up to `columns`; 0 = about square), each sample
  /// captioned with its number and the gallery's seed.
  QImage sampleGrid(int columns = 0) const;

 private:
  QImage result() const;
  StudioController* controller_;
};

}  // namespace automod::ui
