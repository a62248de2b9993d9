#pragma once
// The live result and the sample gallery. Each document change makes one decode job (coalesced:
// the newest state wins, a running decode stops between two blocks), which runs core's incremental
// decode (core/edit/session.h) on the document's plan (core/edit/edit_state.h) and shows every
// recomputed stage from 16 px up before the final image. Galleries are core's conditional samples;
// a kept sample becomes a source with its exact per-block codes.
#include <QImage>
#include <QObject>
#include <QVector>

#include <memory>

#include "ui/types.h"

namespace automod::ui {

class StudioController;

class RenderScheduler : public QObject {
  Q_OBJECT
 public:
  explicit RenderScheduler(StudioController* controller);
  ~RenderScheduler() override;

  /// The latest decoded result (final, not the preview), and the preview before it.
  QImage result() const { return result_; }
  QImage preview() const { return preview_; }
  double lastDecodeMs() const { return last_decode_ms_; }
  /// True while a decode is scheduled or its final image has not arrived yet.
  bool decodePending() const { return decode_scheduled_ || latest_request_ != answered_request_; }

  /// Conditional samples (Sample tab): the `locked` ranges follow the mix, the others are drawn at
  /// random; the document's attribute edit applies to the gallery too. A model change draws the
  /// gallery again with the same settings once the photos are encoded (never a stale gallery).
  void requestSamples(Ranges locked, quint64 seed, int count);
  QVector<QImage> samples() const { return samples_; }
  quint64 samplesSeed() const { return samples_seed_; }
  bool samplesPending() const { return latest_sample_request_ != answered_sample_request_; }
  /// Adds gallery sample `index` as a source with its exact codes (one per block) and its picture,
  /// named `name`. False when there is no such sample.
  bool keepSample(int index, const QString& name);

 Q_SIGNALS:
  void previewReady(const QImage& image);
  void resultReady(const QImage& image);
  void decodeFailed(const QString& message);
  void samplesReady(const QVector<QImage>& images, quint64 seed);
  void samplesFailed(const QString& message);
  /// The gallery was emptied (a model change); a new one follows once the photos are encoded.
  void samplesCleared();

 private:
  void scheduleDecode();
  void onDecoded(const DecodeResult& result);

  StudioController* controller_;
  quint64 next_request_ = 1;
  quint64 latest_request_ = 0, answered_request_ = 0;
  bool decode_scheduled_ = false;
  QImage result_, preview_;
  double last_decode_ms_ = 0;
  QVector<QImage> samples_;
  quint64 samples_seed_ = 0;
  quint64 latest_sample_request_ = 0, answered_sample_request_ = 0;
  struct Gallery {
    bool shown = false;
    Ranges locked;
    quint64 seed = 0;
    int count = 8;
  };
  Gallery gallery_;
  bool regenerate_ = false;
  struct Codes;    // the gallery's per-block codes (for keepSample)
  std::shared_ptr<Codes> codes_;
  struct Cache;    // core's EditSession of the current model (worker thread only)
  std::shared_ptr<Cache> cache_;
};

}  // namespace automod::ui
