// LibTorch first, then Qt (Qt's macros would break torch's headers).
#include <torch/torch.h>

#include "ui/inference_worker.h"

#include <QElapsedTimer>
#include <QFileInfo>
#include <QMutexLocker>

#include "core/align/photo.h"
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

InferenceWorker::InferenceWorker(QObject* parent) : QThread(parent), cache_(std::make_unique<Cache>()) {
  qRegisterMetaType<automod::ui::EncodeResult>();
  qRegisterMetaType<automod::ui::DecodeResult>();
  qRegisterMetaType<automod::ui::SampleResult>();
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
  return busy_ || pending_decode_ || pending_sample_ || !encodes_.isEmpty();
}

quint64 InferenceWorker::requestEncode(const QString& path) {
  QMutexLocker lock(&mutex_);
  const quint64 id = next_id_++;
  encodes_.enqueue({id, path});
  if (!isRunning()) start(QThread::LowPriority);
  condition_.wakeOne();
  return id;
}

quint64 InferenceWorker::requestDecode(const QVector<QVector<float>>& latents, const MixSettings& mix) {
  QMutexLocker lock(&mutex_);
  const quint64 id = next_id_++;
  pending_decode_ = DecodeJob{id, latents, mix};
  if (!isRunning()) start(QThread::LowPriority);
  condition_.wakeOne();
  return id;
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

bool InferenceWorker::superseded() {
  QMutexLocker lock(&mutex_);
  return abort_ || pending_decode_.has_value();
}

void InferenceWorker::run() {
  for (;;) {
    std::optional<std::pair<quint64, QString>> encode_job;
    std::optional<DecodeJob> decode_job;
    std::optional<SampleJob> sample_job;
    std::shared_ptr<Automodulator> model;
    {
      QMutexLocker lock(&mutex_);
      busy_ = false;
      while (!abort_ && encodes_.isEmpty() && !pending_decode_ && !pending_sample_) condition_.wait(&mutex_);
      if (abort_) return;
      // Encodes first: a mix needs its sources, and the newest decode request is kept meanwhile.
      if (!encodes_.isEmpty())
        encode_job = encodes_.dequeue();
      else if (pending_decode_)
        decode_job = std::exchange(pending_decode_, std::nullopt);
      else
        sample_job = std::exchange(pending_sample_, std::nullopt);
      model = model_;
      busy_ = true;
    }
    if (encode_job) {
      auto result = encode(model, encode_job->first, encode_job->second);
      Q_EMIT encoded(result);
    } else if (decode_job) {
      decode(model, *decode_job);
    } else if (sample_job) {
      sample(model, *sample_job);
    }
  }
}

EncodeResult InferenceWorker::encode(std::shared_ptr<Automodulator> model, quint64 id, const QString& path) {
  QElapsedTimer timer;
  timer.start();
  EncodeResult result;
  result.id = id;
  result.source.path = path;
  result.source.name = QFileInfo(path).fileName();
  try {
    if (!model) throw Error("no model is loaded");
    torch::NoGradGuard no_grad;
    PhotoOptions options;
    options.center_crop_fallback = true;
    const auto prepared =
        preparePhoto(path.toStdString(), model->resolution(), model->config().image_channels, options);
    auto z = model->encode(toModelInput(prepared.image).to(model->device()));
    auto rec = toImage(model->decode(z)).squeeze(0);
    result.source.aligned = toQImage(prepared.image);
    result.source.reconstruction = toQImage(rec);
    result.source.latent = toFloatVector(z[0]);
    result.source.note = QString::fromStdString(prepared.note);
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
      auto [first, last] = rangeBlocks(Range(r), blocks);
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
