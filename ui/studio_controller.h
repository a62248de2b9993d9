#pragma once
// The editor's controller: owns the model, the inference worker and the document, turns document
// changes into (coalesced) decode requests and worker results into values the widgets show.
// Tests drive it without a window. Torch stays in the .cpp.
#include <QHash>
#include <QImage>
#include <QObject>
#include <QStringList>

#include <memory>
#include <optional>

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
  /// Pretty-printed config and metadata.
  QString modelInfo() const;
  QString deviceName() const;

  /// Queues photos for preparation and encoding; each becomes a source (or a photoFailed).
  /// With `range`, each photo is also assigned to that scale range once encoded.
  void addPhotos(const QStringList& paths, std::optional<Range> range = std::nullopt);
  /// A pasted image: saved to a temporary PNG, then added like a file.
  void addImage(const QImage& image);
  int pendingPhotos() const { return pending_.size(); }

  /// Conditional samples (Sample tab): `locked` is a bit set of Range values kept from the mix.
  void requestSamples(int locked, quint64 seed, int count);
  QVector<QImage> samples() const { return samples_; }

  /// The latest decoded result (final, not the preview).
  QImage result() const { return result_; }
  QImage preview() const { return preview_; }
  double lastDecodeMs() const { return last_decode_ms_; }
  bool exportResult(const QString& path, QString* error = nullptr) const;

  /// True while a decode is scheduled or its final image has not arrived yet.
  bool decodePending() const { return decode_scheduled_ || latest_request_ != answered_request_; }

 Q_SIGNALS:
  void modelChanged();
  void photoAdded(int index);
  void photoFailed(const QString& path, const QString& message);
  void previewReady(const QImage& image);
  void resultReady(const QImage& image);
  void decodeFailed(const QString& message);
  void samplesReady(const QVector<QImage>& images, quint64 seed);
  void samplesFailed(const QString& message);
  void busyChanged(bool busy);

 private:
  void scheduleDecode();
  void onEncoded(const EncodeResult& result);
  void onDecoded(const DecodeResult& result);

  StudioDocument document_;
  InferenceWorker worker_;
  std::shared_ptr<Automodulator> model_;
  QString model_name_, model_path_;
  bool untrained_ = false;
  QHash<quint64, std::optional<Range>> pending_;
  quint64 latest_request_ = 0;
  quint64 answered_request_ = 0;
  bool decode_scheduled_ = false;
  QImage result_, preview_;
  QVector<QImage> samples_;
  quint64 latest_sample_request_ = 0;
  double last_decode_ms_ = 0;
  QStringList temp_files_;
};

}  // namespace automod::ui
