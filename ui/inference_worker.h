#pragma once
// The one inference thread (qtbase's mandelbrot pattern): requests go in under a mutex, decode
// requests coalesce (the latest wins), encodes queue in order, results come back as values.
// The destructor aborts and waits. LibTorch exceptions are caught here and travel as data.
#include <QMutex>
#include <QQueue>
#include <QThread>
#include <QWaitCondition>

#include <atomic>
#include <memory>
#include <optional>

#include "ui/types.h"

namespace automod {
class Automodulator;
}

namespace automod::ui {

class InferenceWorker : public QThread {
  Q_OBJECT
 public:
  explicit InferenceWorker(QObject* parent = nullptr);
  ~InferenceWorker() override;

  /// Swaps the model (waits for the running job to finish with the old one).
  void setModel(std::shared_ptr<Automodulator> model);
  std::shared_ptr<Automodulator> model() const;

  /// Queues a photo: prepare (align or center-crop), encode, reconstruct. Returns the job id.
  quint64 requestEncode(const QString& path);
  /// Asks for the mix of these latents; a newer request replaces a pending one and interrupts a
  /// running one between decoder blocks. Returns the request number.
  quint64 requestDecode(const QVector<QVector<float>>& latents, const MixSettings& mix);

  /// Conditional samples: blocks of the `locked` ranges (bit r = Range r) use the mix, the others
  /// one random code per sample drawn from `seed`. Coalesced like decodes.
  quint64 requestSamples(const QVector<QVector<float>>& latents, const MixSettings& mix, int locked, quint64 seed,
                         int count);

  /// Decodes started so far (a coalesced burst of requests counts once).
  int decodesStarted() const { return decodes_started_.load(); }
  bool isBusy() const;

 Q_SIGNALS:
  void encoded(const automod::ui::EncodeResult& result);
  void decodeStarted(quint64 request);
  void decoded(const automod::ui::DecodeResult& result);
  void sampled(const automod::ui::SampleResult& result);

 protected:
  void run() override;

 private:
  struct DecodeJob {
    quint64 request = 0;
    QVector<QVector<float>> latents;
    MixSettings mix;
  };
  struct SampleJob {
    quint64 request = 0;
    QVector<QVector<float>> latents;
    MixSettings mix;
    int locked = 0;
    quint64 seed = 0;
    int count = 8;
  };
  void sample(std::shared_ptr<Automodulator> model, const SampleJob& job);
  EncodeResult encode(std::shared_ptr<Automodulator> model, quint64 id, const QString& path);
  void decode(std::shared_ptr<Automodulator> model, const DecodeJob& job);
  bool superseded();

  mutable QMutex mutex_;
  QWaitCondition condition_;
  std::shared_ptr<Automodulator> model_;
  QQueue<std::pair<quint64, QString>> encodes_;
  std::optional<DecodeJob> pending_decode_;
  std::optional<SampleJob> pending_sample_;
  bool abort_ = false;
  bool busy_ = false;
  quint64 next_id_ = 1;
  std::atomic<int> decodes_started_{0};

  struct Cache;  // canvases of the last decode, for incremental decoding (worker thread only)
  std::unique_ptr<Cache> cache_;
};

}  // namespace automod::ui
