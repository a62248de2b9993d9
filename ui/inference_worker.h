#pragma once
// The one inference thread (qtbase's mandelbrot pattern): requests go in under a mutex, decode
// requests coalesce (the latest wins), encodes queue in order, results come back as values.
// The destructor aborts and waits. LibTorch exceptions are caught here and travel as data.
#include <QHash>
#include <QMutex>
#include <QQueue>
#include <QRect>
#include <QThread>
#include <QWaitCondition>

#include <atomic>
#include <memory>
#include <optional>

#include "ui/document.h"
#include "ui/types.h"

namespace automod {
class Automodulator;
}

namespace automod::ui {

/// One frame of a morph (Morph tab).
struct MorphResult {
  quint64 request = 0;
  double t = 0;
  QImage image;
  QString error;
};

/// A finished (or failed, or cancelled) morph video export.
struct MorphVideoResult {
  quint64 id = 0;
  QString path;
  int frames = 0;
  bool cancelled = false;
  QString error;
};

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

/// Where an encoded source came from: its photo, the face, and the photo → crop transform (the
/// AlignTransform's JSON), so the edited result can be pasted back into the photo.
struct PhotoOrigin {
  QString path;
  int face = -1;  ///< -1: center crop
  QSize photoSize;
  QByteArray transform;
};

class InferenceWorker : public QThread {
  Q_OBJECT
 public:
  explicit InferenceWorker(QObject* parent = nullptr);
  ~InferenceWorker() override;

  /// Swaps the model (waits for the running job to finish with the old one).
  void setModel(std::shared_ptr<Automodulator> model);
  std::shared_ptr<Automodulator> model() const;

  /// Which face requestEncode uses when a photo has several.
  enum FaceChoice : int {
    AskFace = -1,      ///< several faces: emit facesFound (nothing is encoded) and wait for a choice
    LargestFace = -2,  ///< the largest face
  };
  /// Queues a photo: prepare (align or center-crop), encode, reconstruct. `face` is a FaceChoice or
  /// the index of a face (largest first). Returns the job id.
  quint64 requestEncode(const QString& path, int face = LargestFace);
  /// Where job `id`'s source came from (set before `encoded` is emitted); empty once taken.
  std::optional<PhotoOrigin> takeOrigin(quint64 id);
  /// Asks for the mix of these latents; a newer request replaces a pending one and interrupts a
  /// running one between decoder blocks. Returns the request number.
  /// A non-null `attribute` is applied on top of the mix (its blocks only; strength 0 changes nothing).
  quint64 requestDecode(const QVector<QVector<float>>& latents, const MixSettings& mix,
                        const AttributeEdit& attribute = {});

  /// One morph frame at t ∈ [0, 1]: blocks of the `moving` ranges slerp from `a` to `b`, the others
  /// keep `a`. Coalesced like decodes (the latest request wins).
  quint64 requestMorph(const QVector<float>& a, const QVector<float>& b, Ranges moving, double t);
  /// `frames` morph frames (t = 0 … 1) written as an MP4 at `fps`, after the interactive jobs;
  /// reports morphVideoProgress per frame. Returns the export id.
  quint64 requestMorphVideo(const QString& path, const QVector<float>& a, const QVector<float>& b, Ranges moving,
                            int frames, double fps);
  /// Stops export `id` (and any earlier one) before its next frame; nothing is written.
  void cancelMorphVideo(quint64 id);
  int morphsStarted() const { return morphs_started_.load(); }

  /// Conditional samples: blocks of the `locked` ranges use the mix, the others one random code per
  /// sample drawn from `seed` (core's conditionalPlan); the attribute edit, when given, applies to
  /// every sample. Coalesced like decodes.
  quint64 requestSamples(const QVector<QVector<float>>& latents, const MixSettings& mix, Ranges locked, quint64 seed,
                         int count, const AttributeEdit& attribute = {});

  /// Decodes started so far (a coalesced burst of requests counts once).
  int decodesStarted() const { return decodes_started_.load(); }
  bool isBusy() const;

 Q_SIGNALS:
  void encoded(const automod::ui::EncodeResult& result);
  /// Job `id` (AskFace) found several faces; nothing was encoded.
  void facesFound(quint64 id, const automod::ui::FaceCandidates& faces);
  void decodeStarted(quint64 request);
  void decoded(const automod::ui::DecodeResult& result);
  void sampled(const automod::ui::SampleResult& result);
  void morphStarted(quint64 request);
  void morphed(const automod::ui::MorphResult& result);
  void morphVideoProgress(quint64 id, int done, int total);
  void morphVideoFinished(const automod::ui::MorphVideoResult& result);

 protected:
  void run() override;

 private:
  struct DecodeJob {
    quint64 request = 0;
    QVector<QVector<float>> latents;
    MixSettings mix;
    AttributeEdit attribute;
  };
  struct MorphJob {
    quint64 request = 0;
    QVector<float> a, b;
    Ranges moving = allRanges();
    double t = 0;
  };
  struct VideoJob {
    quint64 id = 0;
    QString path;
    QVector<float> a, b;
    Ranges moving = allRanges();
    int frames = 2;
    double fps = 24;
  };
  struct SampleJob {
    quint64 request = 0;
    QVector<QVector<float>> latents;
    MixSettings mix;
    Ranges locked;
    quint64 seed = 0;
    int count = 8;
    AttributeEdit attribute;
  };
  struct EncodeJob {
    quint64 id = 0;
    QString path;
    int face = LargestFace;
  };
  void sample(std::shared_ptr<Automodulator> model, const SampleJob& job);
  EncodeResult encode(std::shared_ptr<Automodulator> model, const EncodeJob& job,
                      std::optional<FaceCandidates>* candidates);
  void decode(std::shared_ptr<Automodulator> model, const DecodeJob& job);
  void morph(std::shared_ptr<Automodulator> model, const MorphJob& job);
  void morphVideo(std::shared_ptr<Automodulator> model, const VideoJob& job);
  bool videoCancelled(quint64 id);
  bool superseded();

  mutable QMutex mutex_;
  QWaitCondition condition_;
  std::shared_ptr<Automodulator> model_;
  QQueue<EncodeJob> encodes_;
  QHash<quint64, PhotoOrigin> origins_;
  std::optional<DecodeJob> pending_decode_;
  std::optional<SampleJob> pending_sample_;
  std::optional<MorphJob> pending_morph_;
  QQueue<VideoJob> videos_;
  quint64 cancelled_video_ = 0;
  bool abort_ = false;
  bool busy_ = false;
  quint64 next_id_ = 1;
  std::atomic<int> decodes_started_{0};
  std::atomic<int> morphs_started_{0};

  struct Session;  // core's EditSession for the current model: incremental decoding (worker thread only)
  std::unique_ptr<Session> session_;
  struct PhotoCache;  // the last photos' prepared faces, so choosing a face does not detect again
  std::unique_ptr<PhotoCache> photos_;
};

}  // namespace automod::ui

Q_DECLARE_METATYPE(automod::ui::FaceCandidates)
Q_DECLARE_METATYPE(automod::ui::MorphResult)
Q_DECLARE_METATYPE(automod::ui::MorphVideoResult)
