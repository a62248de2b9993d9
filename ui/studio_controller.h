#pragma once
// The editor's controller: owns the model, the inference worker and the document, turns document
// changes into (coalesced) decode requests and worker results into values the widgets show.
// Tests drive it without a window. Torch stays in the .cpp.
#include <QHash>
#include <QImage>
#include <QObject>
#include <QSet>
#include <QStringList>

#include <memory>
#include <optional>

#include "core/metrics/quality_reference.h"
#include "ui/document.h"
#include "ui/inference_worker.h"

namespace automod::ui {

class StudioController : public QObject {
  Q_OBJECT
 public:
  explicit StudioController(QObject* parent = nullptr);
  ~StudioController() override;

  StudioDocument* document() { return &document_; }
  InferenceWorker* worker() { return &worker_; }

  /// Opens an .amod file (or a training checkpoint). On failure the current model stays.
  bool openModel(const QString& path, QString* error = nullptr);
  /// The bundled model, or a freshly initialised 64 px one (then untrainedModel() is true).
  void openDefaultModel();
  /// Uses a model built elsewhere (tests: a tiny model).
  void setModel(std::shared_ptr<Automodulator> model, const QString& name);
  bool hasModel() const;
  bool untrainedModel() const { return untrained_; }
  QString modelName() const { return model_name_; }
  QString modelPath() const { return model_path_; }
  int modelResolution() const;
  /// The reconstruction PSNR (dB) the model reaches on its own held-out images, when measured: its
  /// metadata's "evaluation" (automod eval --store), else the "<model>-eval.json" that `automod eval
  /// -o` wrote beside the file.
  std::optional<double> modelReferencePsnr() const { return quality_.held_out_psnr_db; }
  /// A sentence when a photo comes back far (4 dB) below that figure: what the model is good for and
  /// where better models are (a real photo on the synthetic-face model). Empty otherwise.
  QString qualityHint(const Source& source) const;
  /// Pretty-printed config and metadata.
  QString modelInfo() const;
  QString deviceName() const;

  /// Queues photos for preparation and encoding; each becomes a source (or a photoFailed).
  /// With `range`, each photo is also assigned to that scale range once encoded. A photo with
  /// several faces emits facesFound and waits for chooseFaces (unless the face mode is Largest).
  void addPhotos(const QStringList& paths, std::optional<Range> range = std::nullopt);
  /// What addPhotos does with a photo that has several faces.
  enum class FaceMode { Ask, Largest };
  void setFaceMode(FaceMode mode) { face_mode_ = mode; }
  FaceMode faceMode() const { return face_mode_; }
  /// Photos waiting for the user to choose a face, and what was found in one of them.
  QStringList photosAwaitingFaceChoice() const { return awaiting_.keys(); }
  FaceCandidates faceCandidates(const QString& path) const;
  /// Encodes the chosen faces of a photo that facesFound reported (indices into its boxes, largest
  /// first), each as its own source; an empty list drops the photo.
  void chooseFaces(const QString& path, const QVector<int>& faces);
  void chooseAllFaces(const QString& path);
  /// A pasted image or a kept sample: saved to a temporary PNG, then added like a file, named `name`
  /// in the strip (default "pasted image N").
  void addImage(const QImage& image, const QString& name = {});
  int pendingPhotos() const { return pending_.size(); }

  /// Conditional samples (Sample tab): the `locked` ranges follow the mix, the others are drawn at
  /// random; the document's attribute edit applies to the gallery too.
  void requestSamples(Ranges locked, quint64 seed, int count);
  QVector<QImage> samples() const { return samples_; }

  /// Saves the project as a recipe (File → Save): the sources (their photos, or their codes when
  /// they have none), the per-range weights, the attribute edit and the morph settings, which
  /// `automod apply --recipe PATH -o OUT.png` replays to the editor's result exactly; plus the
  /// editor's own section (codes, thumbnails). Written atomically.
  bool saveProject(const QString& path, QString* error = nullptr);
  /// Opens a project (a recipe saved by the editor, or a first-format project). Its codes must fit
  /// the current model; otherwise nothing changes and `error` says why.
  bool openProject(const QString& path, QString* error = nullptr);

  /// The latest decoded result (final, not the preview).
  QImage result() const { return result_; }
  QImage preview() const { return preview_; }
  double lastDecodeMs() const { return last_decode_ms_; }
  /// Writes the result in the format its file name's extension names, at `side` × `side` pixels
  /// (upscaled smoothly; ≤ 0: the model's resolution). Says why when it cannot.
  bool exportResult(const QString& path, int side, QString* error = nullptr) const;
  bool exportResult(const QString& path, QString* error = nullptr) const;
  /// The sizes an export offers: the model's resolution, then 256, 512 and 1024 px above it.
  QList<int> exportSides() const;

  /// Where source `index` came from (its photo and alignment), when it was encoded from a photo in
  /// this session; sources of a loaded project have none.
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
  /// True while a decode is scheduled or its final image has not arrived yet.
  bool decodePending() const { return decode_scheduled_ || latest_request_ != answered_request_; }

  // Attributes tab.
  /// Encodes exemplar photos (largest face) without adding them to the document: each becomes an
  /// exemplarEncoded(tag, source) or a photoFailed.
  void encodeExemplars(const QStringList& paths, int tag);
  int pendingExemplars() const { return exemplars_pending_.size(); }
  /// v = mean(positives) − mean(negatives) (core/edit/attribute's rule) restricted to `scales`, for
  /// the current model; nullopt with the reason when there are fewer than 2 + 2 exemplars.
  std::optional<AttributeEdit> buildAttribute(const QVector<QVector<float>>& positives,
                                              const QVector<QVector<float>>& negatives, const QString& scales,
                                              const QString& name, QString* error = nullptr) const;
  /// Attribute JSON files (core/edit/attribute.h's format, shared with `automod attribute`).
  bool saveAttribute(const QString& path, const AttributeEdit& attribute, QString* error = nullptr) const;
  /// Fails, saying why, for a bad file or one made for another model size.
  std::optional<AttributeEdit> loadAttribute(const QString& path, QString* error = nullptr) const;
  /// The block ranges ("0-1,4") of a set of scale ranges in the current model.
  QString scalesOf(Ranges ranges) const;
  /// The scale ranges whose blocks `scales` covers entirely.
  Ranges rangesOf(const QString& scales) const;

  // Morph tab.
  /// The morph frame between sources `a` and `b` at t ∈ [0, 1] (blocks of the `moving` ranges move,
  /// the others stay `a`); requests in one burst make one worker request.
  void requestMorphFrame(int a, int b, Ranges moving, double t);
  QImage morphFrame() const { return morph_frame_; }
  bool morphPending() const { return morph_scheduled_ || latest_morph_ != answered_morph_; }
  bool canWriteVideo() const;
  /// Writes the morph as an MP4 in the background (morphVideoProgress, then morphVideoFinished).
  bool exportMorphVideo(const QString& path, int a, int b, Ranges moving, int frames, double fps,
                        QString* error = nullptr);
  void cancelMorphVideo();
  bool morphVideoRunning() const { return video_running_; }

 Q_SIGNALS:
  void modelChanged();
  /// After a model change, the photos being encoded again by the new model: `done` of `total`.
  void reencodeProgress(int done, int total);
  /// They are back (`kept`); `dropped` sources had no photo to encode again (pasted images, kept
  /// samples, codes from a project) or failed. The undo history was cleared.
  void reencodeFinished(int kept, int dropped);
  /// A photo with several faces (face mode Ask): boxes in photo pixels and the aligned crops,
  /// largest first. Answer with chooseFaces.
  void facesFound(const QString& path, const QVector<QRect>& boxes, const QVector<QImage>& crops);
  void photoAdded(int index);
  void photoFailed(const QString& path, const QString& message);
  void previewReady(const QImage& image);
  void resultReady(const QImage& image);
  void decodeFailed(const QString& message);
  void samplesReady(const QVector<QImage>& images, quint64 seed);
  void samplesFailed(const QString& message);
  void busyChanged(bool busy);
  void exemplarEncoded(int tag, const automod::ui::Source& source);
  void morphFrameReady(const QImage& image, double t);
  void morphFailed(const QString& message);
  void morphVideoProgress(int done, int total);
  /// ok: `frames` frames were written to `path`; otherwise `message` says why (or "cancelled").
  void morphVideoFinished(bool ok, bool cancelled, const QString& path, int frames, const QString& message);

 private:
  void scheduleDecode();
  void onEncoded(const EncodeResult& result);
  void connectEditing();
  /// Handles an exemplar's encode; false when `result` is not one.
  bool onExemplarEncoded(const EncodeResult& result);
  void onFacesFound(quint64 id, const FaceCandidates& faces);
  static QString originKey(const Source& source);
  void onDecoded(const DecodeResult& result);

  StudioDocument document_;
  InferenceWorker worker_;
  std::shared_ptr<Automodulator> model_;
  QString model_name_, model_path_;
  bool untrained_ = false;
  QualityReference quality_;  // the model's held-out PSNR and whether it learnt cartoon faces
  QHash<quint64, std::optional<Range>> pending_;
  struct Reencode {
    QSet<quint64> ids;
    int total = 0, dropped = 0;
    std::optional<MixSettings> mix;
  };
  Reencode reencode_;
  QSet<quint64> stale_encodes_;
  struct Awaiting {
    FaceCandidates faces;
    std::optional<Range> range;
  };
  QHash<QString, Awaiting> awaiting_;
  FaceMode face_mode_ = FaceMode::Ask;
  QHash<QString, PhotoOrigin> origins_;  // by originKey of the source
  quint64 latest_request_ = 0;
  quint64 answered_request_ = 0;
  bool decode_scheduled_ = false;
  QImage result_, preview_;
  QVector<QImage> samples_;
  quint64 samples_seed_ = 0;
  quint64 latest_sample_request_ = 0;
  double last_decode_ms_ = 0;
  QStringList temp_files_;
  QHash<QString, QString> temp_names_;  // temporary file → the name its source gets
  int pasted_count_ = 0;
  QHash<quint64, int> exemplars_pending_;  // encode job → tag
  struct MorphRequest {
    int a = 0, b = 1;
    Ranges moving = allRanges();
    double t = 0;
  };
  MorphRequest morph_request_;
  bool morph_scheduled_ = false;
  quint64 latest_morph_ = 0, answered_morph_ = 0;
  QImage morph_frame_;
  quint64 video_id_ = 0;
  bool video_running_ = false;
};

}  // namespace automod::ui
