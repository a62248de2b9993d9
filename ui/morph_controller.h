#pragma once
// The Morph tab's computations: one frame at t (coalesced like decodes: the latest request wins),
// and an MP4 of the whole morph written in the background (progress, cancellable). Both are core's
// EditState::morphPlan (per-block slerp between two sources' codes) decoded on the worker.
#include <QImage>
#include <QObject>

#include "ui/types.h"

namespace automod::ui {

class StudioController;

class MorphController : public QObject {
  Q_OBJECT
 public:
  explicit MorphController(StudioController* controller);

  /// The frame between sources `a` and `b` at t ∈ [0, 1] (blocks of the `moving` ranges move, the
  /// others stay `a`); requests in one burst make one job.
  void requestFrame(int a, int b, Ranges moving, double t);
  QImage frame() const { return frame_; }
  bool pending() const { return scheduled_ || latest_ != answered_; }
  bool canWriteVideo() const;
  /// Writes the morph as an MP4 in the background (videoProgress, then videoFinished).
  bool exportVideo(const QString& path, int a, int b, Ranges moving, int frames, double fps, QString* error = nullptr);
  void cancelVideo();
  bool videoRunning() const { return video_job_ != 0; }

 Q_SIGNALS:
  void frameReady(const QImage& image, double t);
  void failed(const QString& message);
  void videoProgress(int done, int total);
  /// ok: `frames` frames were written to `path`; otherwise `message` says why (or "cancelled").
  void videoFinished(bool ok, bool cancelled, const QString& path, int frames, const QString& message);

 private:
  StudioController* controller_;
  struct Request {
    int a = 0, b = 1;
    Ranges moving = allRanges();
    double t = 0;
  };
  Request request_;
  bool scheduled_ = false;
  quint64 next_ = 1, latest_ = 0, answered_ = 0;
  QImage frame_;
  quint64 video_job_ = 0;
  QString video_path_;
};

}  // namespace automod::ui
