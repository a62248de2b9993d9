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
#include "core/io/image.h"
#include "core/model/automodulator.h"
#include "core/util/error.h"
#include "ui/tensor_image.h"

namespace automod::ui {

struct InferenceWorker::Cache {
  const Automodulator* model = nullptr;
  LatentPlan plan;
  std::vector<torch::Tensor> canvases;  // canvases[k] = ξ⁽k+1⁾
};

struct InferenceWorker::PhotoCache {
  struct Entry {
    QString key;  // path, modification time, size and channels
    std::vector<PreparedPhoto> faces;
  };
  std::list<Entry> entries;  // most recent first
};

InferenceWorker::InferenceWorker(QObject* parent)
    : QThread(parent), cache_(std::make_unique<Cache>()), photos_(std::make_unique<PhotoCache>()) {
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

quint64 InferenceWorker::requestMorph(const QVector<float>& a, const QVector<float>& b, int moving, double t) {
  QMutexLocker lock(&mutex_);
  const quint64 id = next_id_++;
  pending_morph_ = MorphJob{id, a, b, moving, t};
  if (!isRunning()) start(QThread::LowPriority);
  condition_.wakeOne();
  return id;
}

quint64 InferenceWorker::requestMorphVideo(const QString& path, const QVector<float>& a, const QVector<float>& b,
                                           int moving, int frames, double fps) {
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

quint64 InferenceWorker::requestSamples(const QVector<QVector<float>>& latents, const MixSettings& mix, int locked,
                                        quint64 seed, int count) {
  QMutexLocker lock(&mutex_);
  const quint64 id = next_id_++;
  pending_sample_ = SampleJob{id, latents, mix, locked, seed, count};
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
      if (longer > 1024) {
        auto f = rgb.permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat);
        const double s = 1024.0 / double(longer);
        f = torch::nn::functional::interpolate(
            f, torch::nn::functional::InterpolateFuncOptions()
                   .size(std::vector<int64_t>{std::max<int64_t>(1, std::llround(rgb.size(0) * s)),
                                              std::max<int64_t>(1, std::llround(rgb.size(1) * s))})
                   .mode(torch::kArea));
        rgb = f.squeeze(0).permute({1, 2, 0}).round().clamp(0, 255).to(torch::kUInt8).contiguous();
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
torch::Tensor mixedLatent(const QVector<QVector<float>>& latents, const QVector<double>& weights, int64_t dim) {
  torch::Tensor sum = torch::zeros({dim});
  double total = 0;
  for (int i = 0; i < latents.size(); ++i) {
    const double w = i < weights.size() ? weights[i] : 0.0;
    if (w <= 0) continue;
    sum += w * fromFloatVector(latents[i]);
    total += w;
  }
  if (total <= 0) sum = fromFloatVector(latents.front());  // nothing chosen: the first photo
  return torch::nn::functional::normalize(sum.unsqueeze(0), torch::nn::functional::NormalizeFuncOptions().dim(1));
}

/// The document's attribute as core's AttributeVector, its scales resolved for `blocks` blocks.
AttributeVector toAttributeVector(const AttributeEdit& edit, const BlockLayout& layout) {
  AttributeVector a;
  a.name = edit.name.toStdString();
  a.resolution = edit.resolution;
  a.blocks = edit.blocks;
  a.latent_dim = edit.vector.size();
  a.vector = fromFloatVector(edit.vector);
  if (!edit.scales.trimmed().isEmpty()) a.ranges = parseBlockRanges(edit.scales.toStdString(), layout);
  return a;
}

/// A morph frame's plan: blocks of the `moving` ranges (bit r = Range r) at slerp(a, b, t), the
/// others at a (interpolationPlan's rule, one t at a time).
LatentPlan morphPlan(const torch::Tensor& a, const torch::Tensor& b, int moving, double t, const BlockLayout& layout) {
  const int blocks = layout.size();
  const auto mid = slerp(a, b, t);
  std::vector<torch::Tensor> per_block;
  for (int block = 0; block < blocks; ++block) {
    bool moves = false;
    for (int r = 0; r < 3; ++r) {
      const auto [first, last] = rangeBlocks(Range(r), layout);
      if ((moving & (1 << r)) && block >= first && block <= last) moves = true;
    }
    per_block.push_back(moves ? mid : a);
  }
  return LatentPlan(std::move(per_block));
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
    model->ema->eval();
    const int blocks = model->numBlocks();
    const int64_t dim = model->config().latent_dim;
    std::vector<torch::Tensor> per_block;
    for (int b = 0; b < blocks; ++b)
      per_block.push_back(
          mixedLatent(job.latents, b < job.mix.weights.size() ? job.mix.weights[b] : QVector<double>{}, dim)
              .to(model->device()));
    LatentPlan plan(std::move(per_block));
    // The attribute edit on top of the mix (its blocks only, so incremental decoding still helps).
    if (!job.attribute.isNull() && job.attribute.strength != 0.0)
      plan = applyAttribute(plan, toAttributeVector(job.attribute, BlockLayout::of(*model)), job.attribute.strength);

    // Incremental decoding: reuse the cached canvas before the first block whose latent changed.
    int first = 0;
    auto& cache = *cache_;
    if (cache.model == model.get() && cache.plan.size() == blocks &&
        static_cast<int>(cache.canvases.size()) == blocks)
      first = plan.firstDifferentBlock(cache.plan);
    if (first >= blocks) first = blocks - 1;  // nothing changed: still produce the image
    cache.model = nullptr;                    // invalid until the run completes
    cache.canvases.resize(blocks);
    result.firstBlock = first;
    const int preview_block = blocks >= 3 ? blocks - 2 : -1;
    torch::Tensor h = first > 0 ? cache.canvases[first - 1] : torch::Tensor();
    for (int b = first; b < blocks; ++b) {
      h = model->ema->runBlocks(h, plan, b, b + 1);
      cache.canvases[b] = h;
      if (superseded()) return;  // a newer request wins; the canvases so far stay unused
      if (b == preview_block) {  // coarse-to-fine: a low-resolution preview first
        auto low = model->ema->toRGB(b, h);
        const int scale = 1 << (blocks - 1 - b);
        auto up = torch::nn::functional::interpolate(
            low, torch::nn::functional::InterpolateFuncOptions()
                     .scale_factor(std::vector<double>{double(scale), double(scale)})
                     .mode(torch::kNearest));
        DecodeResult preview = result;
        preview.final = false;
        preview.image = toQImage(toImage(up.cpu()).squeeze(0));
        preview.ms = timer.nsecsElapsed() / 1e6;
        Q_EMIT decoded(preview);
      }
    }
    result.image = toQImage(toImage(model->ema->toRGB(blocks - 1, h).cpu()).squeeze(0));
    cache.plan = plan;
    cache.model = model.get();
  } catch (const std::exception& e) {
    result.error = QString::fromStdString(errorMessage(e));
    cache_->model = nullptr;
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
    const auto plan = morphPlan(unitLatent(job.a, device), unitLatent(job.b, device), job.moving, job.t,
                                BlockLayout::of(*model));
    result.image = toQImage(toImage(model->decode(plan).cpu()).squeeze(0));
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
    const auto a = unitLatent(job.a, device), b = unitLatent(job.b, device);
    std::vector<torch::Tensor> frames;
    for (int i = 0; i < job.frames; ++i) {
      if (videoCancelled(job.id)) {
        result.cancelled = true;
        break;
      }
      const double t = double(i) / double(job.frames - 1);
      frames.push_back(toImage(model->decode(morphPlan(a, b, job.moving, t, BlockLayout::of(*model))).cpu()));
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
    const int blocks = model->numBlocks();
    const int64_t dim = model->config().latent_dim;
    const int n = std::max(1, job.count);
    auto random = model->randomLatents(n, job.seed).to(model->device());
    std::vector<bool> locked(blocks, false);
    for (int r = 0; r < 3; ++r) {
      if (!(job.locked & (1 << r))) continue;
      auto [first, last] = rangeBlocks(Range(r), BlockLayout::of(*model));
      for (int b = first; b <= last; ++b) locked[b] = true;
    }
    std::vector<torch::Tensor> per_block;
    for (int b = 0; b < blocks; ++b) {
      if (locked[b] && !job.latents.isEmpty())
        per_block.push_back(
            mixedLatent(job.latents, b < job.mix.weights.size() ? job.mix.weights[b] : QVector<double>{}, dim)
                .to(model->device())
                .expand({n, dim}));
      else
        per_block.push_back(random);
    }
    auto images = toImage(model->decode(LatentPlan(std::move(per_block))).cpu());
    for (int i = 0; i < n; ++i) result.images.push_back(toQImage(images[i]));
  } catch (const std::exception& e) {
    result.error = QString::fromStdString(errorMessage(e));
  }
  Q_EMIT sampled(result);
}

}  // namespace automod::ui
