#pragma once
// Photo intake: files dropped or opened, pasted images, kept gallery samples and exemplars become
// sources (core's EditSource) through jobs on the worker: prepare (align or centre-crop, core/align),
// encode, reconstruct. A photo with several faces waits for the user's choice (face picker).
// Refinement (core/edit/refine) runs per source in the background, cancellable, as one undo step.
#include <QHash>
#include <QImage>
#include <QObject>
#include <QRect>
#include <QSet>
#include <QStringList>

#include <memory>
#include <optional>

#include "ui/types.h"

namespace automod {
class PreparedPhotoCache;
}

namespace automod::ui {

class StudioController;

/// The faces found in a photo that has several: the editor asks which one to use (face picker).
struct FaceCandidates {
  QString path;
  /// The photo's size (displayed orientation) and a downscaled copy (longer side at most 1024 px).
  QSize photoSize;
  QImage photo;
  /// Detector boxes in photo pixels and the aligned crops (model resolution), largest face first.
  QVector<QRect> boxes;
  QVector<QImage> crops;
};

class PhotoIntake : public QObject {
  Q_OBJECT
 public:
  explicit PhotoIntake(StudioController* controller);
  ~PhotoIntake() override;

  /// Queues photos for preparation and encoding; each becomes a source (or a photoFailed). With
  /// `range`, each photo is also assigned to that scale range once encoded. A photo with several
  /// faces emits facesFound and waits for chooseFaces (unless the face mode is Largest).
  void addPhotos(const QStringList& paths, std::optional<Range> range = std::nullopt);
  /// What addPhotos does with a photo that has several faces.
  enum class FaceMode { Ask, Largest };
  void setFaceMode(FaceMode mode) { face_mode_ = mode; }
  FaceMode faceMode() const { return face_mode_; }
  /// Photos waiting for the user to choose a face, and what was found in one of them.
  QStringList photosAwaitingFaceChoice() const { return awaiting_.keys(); }
  FaceCandidates faceCandidates(const QString& path) const;
  /// Encodes the chosen faces (indices into its boxes, largest first), each as its own source; an
  /// empty list drops the photo.
  void chooseFaces(const QString& path, const QVector<int>& faces);
  void chooseAllFaces(const QString& path);
  /// A pasted image: prepared like a photo (face found and aligned, else centre-cropped) and added as
  /// `name` (default "pasted image N"). It has no file: its picture stands in when another model
  /// needs it encoded.
  void addImage(const QImage& image, const QString& name = {});
  int pendingPhotos() const { return int(pending_.size()); }

  /// Photos are already aligned as the model expects (FFHQ or CelebA-HQ files, `automod align`
  /// output): no face detection, only the model's input transform.
  void setPhotosAligned(bool aligned);
  bool photosAligned() const { return aligned_; }

  /// Encodes exemplar photos (largest face) without adding them to the document: each becomes an
  /// exemplarEncoded(tag, source) or a photoFailed.
  void encodeExemplars(const QStringList& paths, int tag);
  int pendingExemplars() const { return int(exemplars_.size()); }

  // Refinement (core/edit/refine): the source's per-block codes optimised from its encoder code.
  /// Refine new photos with this many steps once they are added (0: off, the default).
  void setRefineNewPhotos(int steps) { refine_new_ = std::max(0, steps); }
  int refineNewPhotos() const { return refine_new_; }
  /// Refines source `index` (`steps` ≤ 0: the default number) in the background; its tile shows the
  /// progress; the result replaces its codes as one undo step. False (with the reason) when it cannot.
  bool refine(int index, int steps = 0, QString* error = nullptr);
  void cancelRefine(int index);
  /// Whether source `id` is being refined, and how far (0…1).
  bool refining(quint64 id) const { return refining_.contains(id); }
  double refineProgress(quint64 id) const { return refining_.value(id).progress; }

 Q_SIGNALS:
  /// A photo with several faces (face mode Ask): boxes in photo pixels and the aligned crops,
  /// largest first. Answer with chooseFaces.
  void facesFound(const QString& path, const QVector<QRect>& boxes, const QVector<QImage>& crops);
  void photoAdded(int index);
  void photoFailed(const QString& path, const QString& message);
  void exemplarEncoded(int tag, const automod::ui::Source& source);
  void busyChanged(bool busy);
  /// Refinement of source `id`: progress 0…1, then finished (ok, or cancelled, or failed with `message`).
  void refineProgressChanged(quint64 id, double progress);
  void refineFinished(quint64 id, bool ok, const QString& message);

 private:
  struct Job {
    QString path;
    QString name;       ///< the source's name ("" = the file's)
    QImage image;       ///< a pasted image (no file)
    int face = -1;      ///< −1: ask (or the largest, by face mode), −2: the largest, ≥ 0: that face
    std::optional<Range> range;
    int tag = -1;       ///< ≥ 0: an exemplar for the Attributes tab
  };
  void submit(const Job& job);
  void finished(quint64 id);
  void startRefine(quint64 id, int steps);

  StudioController* controller_;
  FaceMode face_mode_ = FaceMode::Ask;
  bool aligned_ = false;
  int refine_new_ = 0;
  QHash<quint64, Job> pending_;   // by worker job id
  QHash<quint64, int> exemplars_; // job id → tag
  struct Awaiting {
    FaceCandidates faces;
    std::optional<Range> range;
  };
  QHash<QString, Awaiting> awaiting_;
  int pasted_count_ = 0;
  struct Refining {
    quint64 job = 0;
    double progress = 0;
  };
  QHash<quint64, Refining> refining_;  // by source id
  std::shared_ptr<PreparedPhotoCache> cache_;  // the last photos' prepared faces
};

}  // namespace automod::ui

Q_DECLARE_METATYPE(automod::ui::FaceCandidates)
