// LibTorch first, then Qt (Qt's macros would break torch's headers).
#include <torch/torch.h>

#include "ui/inference_worker.h"

#include <QDateTime>
#include <QElapsedTimer>
#include <QFileInfo>
#include <QMutexLocker>

#include <list>

#include "core/align/photo.h"
#include "core/edit/attribute.h"
#include "core/edit/interpolate.h"
#include "core/edit/plan.h"
#include "core/edit/sampling.h"
#include "core/edit/session.h"
#include "core/io/image.h"
#include "core/metrics/image_quality.h"
#include "core/model/automodulator.h"
#include "core/util/error.h"
#include "ui/tensor_image.h"

namespace automod::ui {

struct InferenceWorker::Session {
  std::shared_ptr<Automodulator> model;
  std::unique_ptr<EditSession> edit;
  /// The session of `m`, a new one when the model changed.
  EditSession& of(const std::shared_ptr<Automodulator>& m) {
    if (m != model || !edit) {
      edit.reset();
      model = m;
      edit = std::make_unique<EditSession>(*m, photoOptionsForModel(m->metadata));
    }
    return *edit;
  }
};

struct InferenceWorker::PhotoCache {
  struct Entry {
    QString key;  // path, modification time, size and channels
    std::vector<PreparedPhoto> faces;
  };
  std::list<Entry> entries;  // most recent first
};

InferenceWorker::InferenceWorker(QObject* parent)
    : QThread(parent), session_(std::make_unique<Session>()), photos_(std::make_unique<PhotoCache>()) {
  qRegisterMetaType<automod::ui::EncodeResult>();
  qRegisterMetaType<automod::ui::FaceCandidates>();
  qRegisterMetaType<automod::ui::DecodeResult>();
  qRegisterMetaType<automod::ui::SampleResult>();
  qRegisterMetaType<automod::ui::MorphResult>();
  qRegisterMetaType<automod::ui::MorphVideoResult>();
}

InferenceWorker::~InferenceWorker() {
  {
    QMutexLocker lock(&mutex_);
    abort_ = true;
    condition_.wakeOne();
  }
  wait();
}

void InferenceWorker::setModel(std::shared_ptr<Automodulator> model) {
  QMutexLocker lock(&mutex_);
  model_ = std::move(model);
}

std::shared_ptr<Automodulator> InferenceWorker::model() const {
  QMutexLocker lock(&mutex_);
  return model_;
}

bool InferenceWorker::isBusy() const {
  QMutexLocker lock(&mutex_);
  return busy_ || pending_decode_ || pending_sample_ || pending_morph_ || !videos_.isEmpty() || !encodes_.isEmpty();
}

quint64 InferenceWorker::requestEncode(const QString& path, int face) {
  QMutexLocker lock(&mutex_);
  const quint64 id = next_id_++;
  encodes_.enqueue(EncodeJob{id, path, face});
  if (!isRunning()) start(QThread::LowPriority);
  condition_.wakeOne();
  return id;
}

quint64 InferenceWorker::requestDecode(const QVector<QVector<float>>& latents, const MixSettings& mix,
                                       const AttributeEdit& attribute) {
  QMutexLocker lock(&mutex_);
  const quint64 id = next_id_++;
  pending_decode_ = DecodeJob{id, latents, mix, attribute};
  if (!isRunning()) start(QThread::LowPriority);
  condition_.wakeOne();
  return id;
}

quint64 InferenceWorker::requestMorph(const QVector<float>& a, const QVector<float>& b, Ranges moving, double t) {
  QMutexLocker lock(&mutex_);
  const quint64 id = next_id_++;
  pending_morph_ = MorphJob{id, a, b, moving, t};
  if (!isRunning()) start(QThread::LowPriority);
  condition_.wakeOne();
  return id;
}

quint64 InferenceWorker::requestMorphVideo(const QString& path, const QVector<float>& a, const QVector<float>& b,
                                           Ranges moving, int frames, double fps) {
  QMutexLocker lock(&mutex_);
  const quint64 id = next_id_++;
  videos_.enqueue(VideoJob{id, path, a, b, moving, frames, fps});
  if (!isRunning()) start(QThread::LowPriority);
  condition_.wakeOne();
  return id;
}

void InferenceWorker::cancelMorphVideo(quint64 id) {
  QMutexLocker lock(&mutex_);
  cancelled_video_ = std::max(cancelled_video_, id);
}

bool InferenceWorker::videoCancelled(quint64 id) {
  QMutexLocker lock(&mutex_);
  return abort_ || id <= cancelled_video_;
}

quint64 InferenceWorker::requestSamples(const QVector<QVector<float>>& latents, const MixSettings& mix, Ranges locked,
                                        quint64 seed, int count, const AttributeEdit& attribute) {
  QMutexLocker lock(&mutex_);
  const quint64 id = next_id_++;
  pending_sample_ = SampleJob{id, latents, mix, locked, seed, count, attribute};
  if (!isRunning()) start(QThread::LowPriority);
  condition_.wakeOne();
  return id;
}

std::optional<PhotoOrigin> InferenceWorker::takeOrigin(quint64 id) {
  QMutexLocker lock(&mutex_);
  auto it = origins_.find(id);
  if (it == origins_.end()) return std::nullopt;
  PhotoOrigin o = *it;
  origins_.erase(it);
  return o;
}

bool InferenceWorker::superseded() {
  QMutexLocker lock(&mutex_);
  return abort_ || pending_decode_.has_value();
}

void InferenceWorker::run() {
  for (;;) {
    std::optional<EncodeJob> encode_job;
    std::optional<DecodeJob> decode_job;
    std::optional<SampleJob> sample_job;
    std::optional<MorphJob> morph_job;
    std::optional<VideoJob> video_job;
    std::shared_ptr<Automodulator> model;
    {
      QMutexLocker lock(&mutex_);
      busy_ = false;
      while (!abort_ && encodes_.isEmpty() && !pending_decode_ && !pending_sample_ && !pending_morph_ &&
             videos_.isEmpty())
        condition_.wait(&mutex_);
      if (abort_) return;
      // Encodes first: a mix needs its sources, and the newest decode request is kept meanwhile.
      if (!encodes_.isEmpty())
        encode_job = encodes_.dequeue();
      else if (pending_decode_)
        decode_job = std::exchange(pending_decode_, std::nullopt);
      else if (pending_morph_)
        morph_job = std::exchange(pending_morph_, std::nullopt);
      else if (pending_sample_)
        sample_job = std::exchange(pending_sample_, std::nullopt);
      else
        video_job = videos_.dequeue();  // the long export last: interactive requests go first
      model = model_;
      busy_ = true;
    }
    if (encode_job) {
      std::optional<FaceCandidates> candidates;
      auto result = encode(model, *encode_job, &candidates);
      if (candidates)
        Q_EMIT facesFound(encode_job->id, *candidates);
      else
        Q_EMIT encoded(result);
    } else if (decode_job) {
      decode(model, *decode_job);
    } else if (sample_job) {
      sample(model, *sample_job);
    } else if (morph_job) {
      morph(model, *morph_job);
    } else if (video_job) {
      morphVideo(model, *video_job);
    }
  }
}

EncodeResult InferenceWorker::encode(std::shared_ptr<Automodulator> model, const EncodeJob& job,
                                     std::optional<FaceCandidates>* candidates) {
  QElapsedTimer timer;
  timer.start();
  EncodeResult result;
  result.id = job.id;
  const QString& path = job.path;
  const QString file_name = QFileInfo(path).fileName();
  result.source.path = path;
  result.source.name = file_name;
  try {
    if (!model) throw Error("no model is loaded");
    torch::NoGradGuard no_grad;
    const int size = model->resolution(), channels = model->config().image_channels;
    // Every face of the photo (one detection), or its center crop when it has none; cached, so
    // that encoding the face the user picked does not detect again.
    const QFileInfo info(path);
    // The model says how its photos are prepared (FFHQ or CelebA-HQ crop, or none for scenes).
    PhotoOptions options = photoOptionsForModel(model->metadata);
    options.center_crop_fallback = true;
    const QString key = QStringLiteral("%1|%2|%3|%4|%5|%6")
                            .arg(info.absoluteFilePath())
                            .arg(info.lastModified().toMSecsSinceEpoch())
                            .arg(size)
                            .arg(channels)
                            .arg(options.align)
                            .arg(int(options.style));
    auto& cache = photos_->entries;
    auto hit = std::find_if(cache.begin(), cache.end(), [&](const auto& e) { return e.key == key; });
    if (hit == cache.end()) {
      auto rgb = readImage(path.toStdString(), 3);
      cache.push_front({key, preparePhotoImage(rgb, file_name.toStdString(), size, channels, options, true)});
      if (cache.size() > 4) cache.pop_back();
    } else if (hit != cache.begin()) {
      cache.splice(cache.begin(), cache, hit);
    }
    const std::vector<PreparedPhoto>& faces = cache.front().faces;
    const int n = static_cast<int>(faces.size());
    if (n > 1 && job.face == AskFace && candidates) {
      FaceCandidates c;
      c.path = path;
      c.photoSize = QSize(faces.front().photo_width, faces.front().photo_height);
      auto rgb = readImage(path.toStdString(), 3);
      const int64_t longer = std::max(rgb.size(0), rgb.size(1));
      if (longer > 1024) {  // the picker shows the photo at most 1024 px across
        const double s = 1024.0 / double(longer);
        rgb = resizeImage(rgb, static_cast<int>(std::max<int64_t>(1, std::llround(rgb.size(1) * s))),
                          static_cast<int>(std::max<int64_t>(1, std::llround(rgb.size(0) * s))));
      }
      c.photo = toQImage(rgb);
      for (const auto& p : faces) {
        const auto& box = p.faces.at(p.face_index).box;
        c.boxes.push_back(QRect(box[0], box[1], box[2], box[3]));
        c.crops.push_back(toQImage(p.image));
      }
      *candidates = std::move(c);
      result.ms = timer.nsecsElapsed() / 1e6;
      return result;
    }
    int k = job.face < 0 ? 0 : job.face;
    if (k >= n)
      throw Error(file_name.toStdString() + " has " + std::to_string(n) + (n == 1 ? " face" : " faces") +
                  "; face " + std::to_string(k + 1) + " does not exist");
    const PreparedPhoto& prepared = faces[k];
    QString note = QString::fromStdString(prepared.note);
    if (n > 1) {
      result.source.name = tr("%1 (face %2)").arg(file_name).arg(k + 1);
      const QString which = job.face < 0 ? tr("%1 faces found; using the largest").arg(n)
                                         : tr("face %1 of %2").arg(k + 1).arg(n);
      note = note.isEmpty() ? which : which + "; " + note;
    }
    auto z = model->encode(toModelInput(prepared.image).to(model->device()));
    auto rec = toImage(model->decode(z)).squeeze(0);
    result.source.aligned = toQImage(prepared.image);
    result.source.reconstruction = toQImage(rec);
    // How far this model is from the photo (the editor's tile shows it, the controller compares it
    // with the model's held-out figure).
    const auto a = prepared.image.permute({2, 0, 1}).unsqueeze(0), b = rec.permute({2, 0, 1}).unsqueeze(0);
    result.source.psnr = psnr(a, b);
    result.source.ssim = ssim(a, b);
    result.source.latent = toFloatVector(z[0]);
    result.source.note = note;
    PhotoOrigin origin;
    origin.path = path;
    origin.face = prepared.aligned ? prepared.face_index : -1;
    origin.photoSize = QSize(prepared.photo_width, prepared.photo_height);
    origin.transform = QByteArray::fromStdString(prepared.transform.toJson().dump());
    QMutexLocker lock(&mutex_);
    origins_.insert(job.id, origin);
  } catch (const std::exception& e) {
    result.error = QString::fromStdString(errorMessage(e));
  }
  result.ms = timer.nsecsElapsed() / 1e6;
  return result;
}

namespace {

// Thin conversions between the document's values and core's; every computation is core's.

/// The mix as core's plan (blockMixPlan: the normalised weighted sum per block; a block without
/// any weight takes the first source).
LatentPlan mixPlan(Automodulator& model, const QVector<QVector<float>>& latents, const MixSettings& mix) {
  return blockMixPlan(toLatents(latents, model.device()), toWeights(mix), model.numBlocks());
}

/// The attribute edit on top of a plan (its blocks only; strength 0 or none changes nothing).
LatentPlan withAttribute(const LatentPlan& plan, const AttributeEdit& edit, Automodulator& model) {
  if (edit.isNull() || edit.strength == 0.0) return plan;
  return applyAttribute(plan, toAttributeVector(edit, BlockLayout::of(model)), edit.strength);
}

torch::Tensor unitLatent(const QVector<float>& v, const torch::Device& device) {
  return fromFloatVector(v).unsqueeze(0).to(device);
}
}  // namespace

void InferenceWorker::decode(std::shared_ptr<Automodulator> model, const DecodeJob& job) {
  Q_EMIT decodeStarted(job.request);
  decodes_started_.fetch_add(1);
  QElapsedTimer timer;
  timer.start();
  DecodeResult result;
  result.request = job.request;
  try {
    if (!model) throw Error("no model is loaded");
    if (job.latents.isEmpty()) throw Error("add a photo first");
    torch::NoGradGuard no_grad;
    auto& session = session_->of(model);
    session.setPlan(withAttribute(mixPlan(*model, job.latents, job.mix), job.attribute, *model));
    // Incremental decoding (core's EditSession), refined progressively: the image of every stage that
    // was recomputed — 16 px, then 32 px and up — is shown as soon as its block is done, so that a
    // 256–512 px model sharpens on screen instead of freezing for a second. A newer request stops it
    // between blocks, and the blocks computed so far are kept for the next one.
    const int blocks = model->numBlocks();
    const auto layout = BlockLayout::of(*model);
    bool stopped = false;
    auto image = session.decode([&](int b) {
      if (b == session.lastRestartBlock()) result.firstBlock = b;
      if (superseded()) {
        stopped = true;
        return false;
      }
      const int resolution = layout.resolutions[static_cast<size_t>(b)];
      if (b < blocks - 1 && b >= session.lastRestartBlock() && (resolution == 16 || resolution >= 32)) {
        DecodeResult preview = result;
        preview.final = false;
        preview.image = toQImage(toImage(session.blockImage(b).cpu()).squeeze(0));
        preview.ms = timer.nsecsElapsed() / 1e6;
        Q_EMIT decoded(preview);
      }
      return true;
    });
    if (stopped) return;  // a newer request wins
    result.firstBlock = std::min(session.lastRestartBlock(), blocks - 1);
    result.image = toQImage(toImage(image.cpu()).squeeze(0));
  } catch (const std::exception& e) {
    result.error = QString::fromStdString(errorMessage(e));
    if (session_->edit) session_->edit->invalidate();
  }
  result.ms = timer.nsecsElapsed() / 1e6;
  Q_EMIT decoded(result);
}

void InferenceWorker::morph(std::shared_ptr<Automodulator> model, const MorphJob& job) {
  Q_EMIT morphStarted(job.request);
  morphs_started_.fetch_add(1);
  MorphResult result;
  result.request = job.request;
  result.t = job.t;
  try {
    if (!model) throw Error("no model is loaded");
    if (job.a.isEmpty() || job.b.isEmpty()) throw Error("choose two photos to morph between");
    torch::NoGradGuard no_grad;
    const auto device = model->device();
    const auto plan = interpolationPlanAt({unitLatent(job.a, device), unitLatent(job.b, device)}, job.t,
                                          model->numBlocks(), blockRanges(job.moving, BlockLayout::of(*model)));
    result.image = toQImage(toImage(session_->of(model).decodeFull(plan).cpu()).squeeze(0));
  } catch (const std::exception& e) {
    result.error = QString::fromStdString(errorMessage(e));
  }
  Q_EMIT morphed(result);
}

void InferenceWorker::morphVideo(std::shared_ptr<Automodulator> model, const VideoJob& job) {
  MorphVideoResult result;
  result.id = job.id;
  result.path = job.path;
  try {
    if (!model) throw Error("no model is loaded");
    if (job.a.isEmpty() || job.b.isEmpty()) throw Error("choose two photos to morph between");
    if (job.frames < 2) throw Error("a morph needs at least 2 frames (got " + std::to_string(job.frames) + ")");
    if (!videoAvailable()) throw Error("this build cannot write videos (it has no OpenCV)");
    torch::NoGradGuard no_grad;
    const auto device = model->device();
    const std::vector<torch::Tensor> keys{unitLatent(job.a, device), unitLatent(job.b, device)};
    const auto ranges = blockRanges(job.moving, BlockLayout::of(*model));
    auto& session = session_->of(model);
    std::vector<torch::Tensor> frames;
    for (int i = 0; i < job.frames; ++i) {
      if (videoCancelled(job.id)) {
        result.cancelled = true;
        break;
      }
      // Frame i is interpolationPlan(keys, frames)'s i-th plan, decoded one at a time.
      const double t = double(i) / double(job.frames - 1);
      frames.push_back(toImage(session.decodeFull(interpolationPlanAt(keys, t, model->numBlocks(), ranges)).cpu()));
      Q_EMIT morphVideoProgress(job.id, i + 1, job.frames);
    }
    if (!result.cancelled) {
      writeVideo(job.path.toStdString(), torch::cat(frames), job.fps);
      result.frames = static_cast<int>(frames.size());
    }
  } catch (const std::exception& e) {
    result.error = QString::fromStdString(errorMessage(e));
  }
  Q_EMIT morphVideoFinished(result);
}

void InferenceWorker::sample(std::shared_ptr<Automodulator> model, const SampleJob& job) {
  SampleResult result;
  result.request = job.request;
  result.seed = job.seed;
  try {
    if (!model) throw Error("no model is loaded");
    torch::NoGradGuard no_grad;
    // Core's conditional sampling: the locked blocks follow the mix, each other block one random
    // code per sample; then the attribute edit, as on the mix.
    std::vector<RangeAssignment> locks;
    if (!job.latents.isEmpty()) {
      const auto mix = mixPlan(*model, job.latents, job.mix);
      for (const auto& range : blockRanges(job.locked, BlockLayout::of(*model)))
        for (int b = range.first; b <= range.last; ++b) locks.push_back({BlockRange{b, b}, {mix[b]}, {}});
    }
    SamplingOptions options;
    options.count = std::max(1, job.count);
    options.seed = job.seed;
    const auto plan = withAttribute(conditionalPlan(*model, locks, options), job.attribute, *model);
    auto images = toImage(session_->of(model).decodeFull(plan).cpu());
    for (int i = 0; i < options.count; ++i) result.images.push_back(toQImage(images[i]));
  } catch (const std::exception& e) {
    result.error = QString::fromStdString(errorMessage(e));
  }
  Q_EMIT sampled(result);
}

}  // namespace automod::ui
