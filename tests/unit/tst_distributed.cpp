// Data-parallel training on c10d (docs/design.md §3 "Scaling out"): the torchrun environment, two Gloo ranks
// on 127.0.0.1 (this test binary re-started as rank processes, one torch thread each), broadcast,
// bucketed gradient averaging, all-gather, global-batch moments and their gradients, the sampler's
// shards, a dead or hung rank that makes the other fail within the stated time, and two training
// ranks that end with the parameters of one process with the doubled batch.
#include <QtTest>

#include <QProcess>
#include <QTemporaryDir>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <set>
#include <thread>

#include "core/io/archive.h"
#include "core/util/error.h"
#include "testutil.h"
#include "training/distributed.h"
#include "training/trainer.h"

using namespace automod;

namespace {

constexpr int kBatch = 6;  // per rank
constexpr int kDim = 16;
constexpr int kCollectiveTimeoutMs = 4000;


/// The same "global batch" on every rank (and in the parent): rows [r·b, (r+1)·b) belong to rank r.
torch::Tensor globalLatents(int ranks) {
  auto gen = at::detail::createCPUGenerator(77);
  return torch::randn({ranks * kBatch, kDim}, gen) * 0.3 + 0.1;
}

/// Gradients of rank r for the all-reduce test: sizes that force several buckets and one tensor
/// larger than a bucket, plus a parameter without a gradient.
std::vector<torch::Tensor> rankGradients(int rank) {
  auto gen = at::detail::createCPUGenerator(1000 + rank);
  std::vector<torch::Tensor> g;
  for (int64_t n : {7, 300, 1, 2048, 5000, 64}) g.push_back(torch::randn({n}, gen));
  g.push_back(torch::randn({3, 5, 7}, gen));
  return g;
}

/// A fixed random weighting of the moments, so every dimension's gradient matters.
torch::Tensor momentWeights() {
  auto gen = at::detail::createCPUGenerator(5);
  return torch::randn({2, kDim}, gen);
}

torch::Tensor momentLoss(const BatchMoments& m) {
  auto w = momentWeights();
  return klFromMoments(m) + (m.mean * w[0]).sum() + (m.var * w[1]).sum();
}

BatchMoments singleProcessMoments(const torch::Tensor& z) {
  auto mean = z.mean(0);
  return {mean, (z - mean).square().mean(0), z.size(0)};
}

void save(const std::vector<torch::Tensor>& tensors, const std::string& path) { torch::save(tensors, path); }

std::vector<torch::Tensor> load(const std::string& path) {
  std::vector<torch::Tensor> t;
  torch::load(t, path);
  return t;
}

// Training: a 4 → 8 px model through the first fade-in, so that style mixing, the layer loss, the
// fade-in and the image pool all take part. Batch 5 per rank (10 global): the encoder step mixes the
// last 3 codes (rank 1 holds 2 plain and 3 mixed), the decoder step the last 5 (rank 0 has only plain
// rows, rank 1 only mixed ones).
constexpr int kTrainBatch = 5;  // per rank
constexpr int64_t kTrainImages = 160;
constexpr double kTrainTolerance = 1e-4;

std::shared_ptr<TensorImageDataset> trainImages() {
  auto gen = at::detail::createCPUGenerator(11);
  auto low = at::rand({40, 3, 4, 4}, gen);
  auto img = torch::nn::functional::interpolate(low, torch::nn::functional::InterpolateFuncOptions()
                                                         .size(std::vector<int64_t>{8, 8})
                                                         .mode(torch::kBilinear)
                                                         .align_corners(false));
  return std::make_shared<TensorImageDataset>((img * 255).round().clamp(0, 255).to(torch::kUInt8), 4);
}

TrainerConfig trainConfig(const std::string& run_dir, int batch) {
  TrainingPreset p;
  p.name = "dist";
  p.resolution = 8;
  p.widths = {8, 8};
  p.latent_dim = 16;
  p.phases = {{4, 0, 2e-3, 0.0}, {8, 40, 2e-3, 0.02}};
  p.batch_by_resolution = {{4, batch}, {8, batch}};
  p.fade_in_images = 40;
  p.total_images = kTrainImages;
  p.checkpoint_every = 1000;
  p.preview_every = 1000;
  p.log_every = 10;
  p.pool_size = 16;
  // The CPU presets' recipe (plain modulation, a slower encoder, the decoder-step reconstruction
  // term, whose mean is taken over both ranks' images like the other terms) must agree too.
  p.plain_modulation = true;
  p.encoder_lr_factor = 0.1;
  p.losses.decoder_rec = 1.0;
  TrainerConfig c;
  c.preset = p;
  c.run_dir = run_dir;
  c.seed = 7;
  c.write_previews = false;
  return c;
}

// ---------------------------------------------------------------------------------------------
// Rank processes: the test binary started with AUTOMOD_DIST_WORKER=<scenario>.

int collectivesWorker(Distributed& dist, const std::string& out) {
  const int r = dist.rank(), n = dist.worldSize();
  const std::string prefix = out + "/rank" + std::to_string(r) + "-";

  // Broadcast: different seeds per rank; afterwards everything equals rank 0's.
  auto model = test::tinyModel(16, 1 + static_cast<uint64_t>(r));
  {
    // A training forward so the spectral-norm vectors move away from their initial values.
    torch::NoGradGuard ng;
    model->encoder->train();
    model->encoder->forward(torch::randn({2, 3, 16, 16}), 2, 1.0);
  }
  auto state = stateTensors(*model->encoder);
  for (auto& t : stateTensors(*model->decoder)) state.push_back(t);
  for (auto& t : stateTensors(*model->ema)) state.push_back(t);
  state.push_back(torch::full({5}, 10.0 + r));                       // robust-loss parameters
  state.push_back(torch::full({3}, static_cast<int64_t>(100 + r)));  // an integer buffer
  save(state, prefix + "before.pt");
  dist.broadcast(state);
  save(state, prefix + "after.pt");

  // Bucketed gradient mean.
  std::vector<torch::Tensor> params;
  for (auto& g : rankGradients(r)) {
    auto p = torch::zeros_like(g).requires_grad_(true);
    p.mutable_grad() = g.clone();
    params.push_back(p);
  }
  params.push_back(torch::zeros({4}).requires_grad_(true));  // no gradient: skipped
  dist.resetStats();
  dist.allReduceMeanGradients(params);
  std::vector<torch::Tensor> grads;
  for (size_t i = 0; i + 1 < params.size(); ++i) grads.push_back(params[i].grad());
  save(grads, prefix + "grads.pt");
  const auto bucket_calls = dist.stats().collectives;

  // Global-batch moments: values, and gradients w.r.t. this rank's rows.
  auto z = globalLatents(n).narrow(0, r * kBatch, kBatch).clone().requires_grad_(true);
  auto m = dist.globalBatchMoments(z);
  momentLoss(m).backward();
  // The KL as the trainer uses it: gradient scaled by world size, then averaged like the others.
  auto gen = at::detail::createCPUGenerator(9);
  auto w = torch::randn({kDim, kDim}, gen).requires_grad_(true);
  auto x = globalLatents(n).narrow(0, r * kBatch, kBatch);
  dist.globalBatchKL(x.matmul(w)).backward();
  dist.allReduceMeanGradients({w});
  save({m.mean.detach(), m.var.detach(), z.grad(), w.grad(), torch::tensor({bucket_calls})}, prefix + "moments.pt");

  // All-gather: rank r contributes rows filled with r.
  auto gathered = dist.allGather(torch::full({2, 3}, static_cast<float>(r)));
  save({gathered}, prefix + "gathered.pt");
  dist.barrier();
  return 0;
}

/// Trains kTrainImages images with batch kTrainBatch per rank; rank 0 writes ranks/latest.amod and
/// every rank saves its final weights (encoder, decoder, EMA, spectral-norm vectors).
int trainWorker(Distributed& dist, const std::string& out) {
  auto config = trainConfig(out + "/ranks", kTrainBatch);
  config.distributed = &dist;
  Trainer trainer(config, trainImages());
  const auto result = trainer.run();
  if (result.status != TrainingResult::Finished) {
    std::cerr << "training failed: " << result.error << std::endl;
    return 4;
  }
  std::vector<torch::Tensor> state;
  for (auto& [name, t] : namedState(trainer.model())) state.push_back(t.detach().clone());
  save(state, out + "/rank" + std::to_string(dist.rank()) + "-trained.pt");
  return 0;
}

int loopWorker(Distributed& dist) {
  // All-reduce until a peer goes away; rank 1 says when the ranks are connected.
  auto t = torch::ones({1024});
  for (int64_t i = 0;; ++i) {
    std::vector<torch::Tensor> io{t};
    dist.allReduceSum(io);
    t.fill_(1.0);
    if (i == 3) {
      std::cout << "ready" << std::endl;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

int runWorker(const std::string& scenario) {
  torch::set_num_threads(1);
  try {
    DistributedOptions opts;
    opts.timeout = std::chrono::milliseconds(kCollectiveTimeoutMs);
    opts.rendezvous_timeout = std::chrono::milliseconds(std::atoi(std::getenv("AUTOMOD_DIST_RDV_MS")));
    opts.bucket_bytes = 4096;  // many buckets, and a tensor larger than one
    if (const char* f = std::getenv("AUTOMOD_DIST_STORE_FILE")) {
      opts.rendezvous = DistributedOptions::Rendezvous::File;
      opts.store_file = f;
    }
    if (scenario == "train") opts.timeout = std::chrono::seconds(60);  // ranks share 2 cores with the test
    Distributed dist(DistributedEnv::fromEnvironment(opts.rendezvous == DistributedOptions::Rendezvous::Tcp), opts);
    if (scenario == "collectives") return collectivesWorker(dist, std::getenv("AUTOMOD_DIST_OUT"));
    if (scenario == "train") return trainWorker(dist, std::getenv("AUTOMOD_DIST_OUT"));
    if (scenario == "loop") return loopWorker(dist);
    std::cerr << "unknown scenario " << scenario << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << errorMessage(e) << std::endl;
    return 3;
  }
}

std::unique_ptr<QProcess> startRank(const QString& scenario, int rank, int world, int port, const QString& out,
                                    int rendezvous_ms = 20000, const QString& store_file = {}) {
  auto p = std::make_unique<QProcess>();
  auto env = QProcessEnvironment::systemEnvironment();
  env.insert("AUTOMOD_DIST_WORKER", scenario);
  env.insert("AUTOMOD_DIST_OUT", out);
  env.insert("AUTOMOD_DIST_RDV_MS", QString::number(rendezvous_ms));
  env.insert("MASTER_ADDR", "127.0.0.1");
  env.insert("MASTER_PORT", QString::number(port));
  env.insert("RANK", QString::number(rank));
  env.insert("LOCAL_RANK", QString::number(rank));
  env.insert("WORLD_SIZE", QString::number(world));
  env.insert("OMP_NUM_THREADS", "1");
  if (!store_file.isEmpty()) env.insert("AUTOMOD_DIST_STORE_FILE", store_file);
  p->setProcessEnvironment(env);
  p->start(QCoreApplication::applicationFilePath(), {"-silent"});
  return p;
}

}  // namespace

class TestDistributed : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void initTestCase();
  void environmentIsReadWithClearErrors();
  void slurmVariablesStandIn();
  void samplerShardsAreDisjointAndCover();
  void samplerRanksTogetherReadTheDoubledBatch();
  void oneRankMomentsEqualPlainMoments();
  void twoGlooRanksAgreeWithOneProcess();
  void fileStoreRendezvousWorks();
  void missingPeerFailsRendezvousInTime();
  void killedRankStopsTheOtherInTime();
  void hungRankStopsTheOtherWithinTimeout();
  void trainTwoRanksThenResumeWithOneAndTwo();
  void twoTrainingRanksEqualOneProcessWithDoubledBatch();

 private:
  void runCollectives(bool file_store);
};

void TestDistributed::initTestCase() {
  if (const char* scenario = std::getenv("AUTOMOD_DIST_WORKER")) {
    std::cout.flush();
    std::_Exit(runWorker(scenario));
  }
  torch::set_num_threads(1);
}

void TestDistributed::environmentIsReadWithClearErrors() {
  auto env = DistributedEnv::fromVariables({});
  QCOMPARE(env.world_size, 1);
  QCOMPARE(env.rank, 0);
  QVERIFY(env.isMain());

  env = DistributedEnv::fromVariables(
      {{"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "29500"}, {"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}});
  QCOMPARE(env.rank, 3);
  QCOMPARE(env.world_size, 4);
  QCOMPARE(env.local_rank, 1);
  QCOMPARE(env.master_port, 29500);
  QVERIFY(!env.isMain());

  auto expectError = [](const std::map<std::string, std::string>& vars, const char* needle, bool need_master = true) {
    try {
      DistributedEnv::fromVariables(vars, need_master);
    } catch (const Error& e) {
      const std::string what = e.what();
      if (what.find(needle) == std::string::npos) QFAIL(("message lacks '" + std::string(needle) + "': " + what).c_str());
      return;
    }
    QFAIL(("no error for a case expecting '" + std::string(needle) + "'").c_str());
  };
  expectError({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_PORT", "29500"}}, "MASTER_ADDR is not set");
  expectError({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_ADDR", "h"}}, "MASTER_PORT is not set");
  expectError({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}},
              "MASTER_PORT=70000 is out of range");
  expectError({{"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}}, "RANK is not set");
  expectError({{"WORLD_SIZE", "2"}, {"RANK", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}},
              "RANK=2 is out of range [0, 1]");
  expectError({{"WORLD_SIZE", "two"}, {"RANK", "0"}}, "WORLD_SIZE='two' is not an integer");
  expectError({{"WORLD_SIZE", "0"}, {"RANK", "0"}}, "WORLD_SIZE=0 is out of range");
  // A FileStore rendezvous needs no master.
  env = DistributedEnv::fromVariables({{"WORLD_SIZE", "2"}, {"RANK", "1"}}, false);
  QCOMPARE(env.rank, 1);
}

void TestDistributed::slurmVariablesStandIn() {
  auto env = DistributedEnv::fromVariables({{"SLURM_NTASKS", "8"},
                                            {"SLURM_PROCID", "5"},
                                            {"SLURM_LOCALID", "1"},
                                            {"MASTER_ADDR", "node01"},
                                            {"MASTER_PORT", "29500"}});
  QCOMPARE(env.world_size, 8);
  QCOMPARE(env.rank, 5);
  QCOMPARE(env.local_rank, 1);
  // torchrun's variables win over Slurm's.
  env = DistributedEnv::fromVariables({{"SLURM_NTASKS", "8"},
                                       {"SLURM_PROCID", "5"},
                                       {"WORLD_SIZE", "2"},
                                       {"RANK", "1"},
                                       {"MASTER_ADDR", "node01"},
                                       {"MASTER_PORT", "29500"}});
  QCOMPARE(env.world_size, 2);
  QCOMPARE(env.rank, 1);
}

void TestDistributed::samplerShardsAreDisjointAndCover() {
  const int64_t n = 103;  // not a multiple of the global batch
  for (int world : {2, 3}) {
    for (int64_t epoch : {0, 1}) {
      std::multiset<int64_t> all;
      size_t smallest = n, largest = 0;
      for (int r = 0; r < world; ++r) {
        auto shard = DistributedSampler(n, 42, r, world).shard(epoch, 8);
        smallest = std::min(smallest, shard.size());
        largest = std::max(largest, shard.size());
        all.insert(shard.begin(), shard.end());
      }
      QCOMPARE(static_cast<int64_t>(all.size()), n);
      QCOMPARE(static_cast<int64_t>(std::set<int64_t>(all.begin(), all.end()).size()), n);  // disjoint
      QCOMPARE(*all.begin(), int64_t(0));
      QCOMPARE(*all.rbegin(), n - 1);
      QVERIFY(largest - smallest <= 8);
    }
  }
  // Reshuffled per epoch, identical on every rank for the same seed, different for another seed.
  DistributedSampler a(n, 42, 0, 2), b(n, 42, 1, 2), c(n, 43, 0, 2);
  QVERIFY(!torch::equal(a.permutation(0), a.permutation(1)));
  QVERIFY(torch::equal(a.permutation(3), b.permutation(3)));
  QVERIFY(!torch::equal(a.permutation(0), c.permutation(0)));
}

void TestDistributed::samplerRanksTogetherReadTheDoubledBatch() {
  const int64_t n = 37, b = 5;
  DistributedSampler single(n, 7, 0, 1), r0(n, 7, 0, 2), r1(n, 7, 1, 2);
  for (int64_t step = 0; step < 12; ++step) {  // crosses several epoch boundaries
    const int64_t start = step * 2 * b;
    auto whole = single.localBatch(start, 2 * b);
    auto first = r0.localBatch(start, b), second = r1.localBatch(start, b);
    first.insert(first.end(), second.begin(), second.end());
    QCOMPARE(first, whole);
  }
  // The single-process stream is the Trainer's: epoch e is randperm(n, seed·1000003 + e).
  auto gen = at::detail::createCPUGenerator(7 * 1000003ULL + 1);
  auto perm1 = torch::randperm(n, gen, torch::kLong);
  QCOMPARE(single.localBatch(n, 1)[0], perm1[0].item<int64_t>());
}

void TestDistributed::oneRankMomentsEqualPlainMoments() {
  Distributed dist(DistributedEnv{}, {});
  QCOMPARE(dist.worldSize(), 1);
  QVERIFY(dist.isMain());
  QCOMPARE(QString::fromStdString(dist.backendName()), QString("none"));
  auto z = globalLatents(2).requires_grad_(true);
  auto m = dist.globalBatchMoments(z);
  momentLoss(m).backward();
  auto z2 = globalLatents(2).requires_grad_(true);
  auto ref = singleProcessMoments(z2);
  momentLoss(ref).backward();
  QVERIFY(test::maxAbsDiff(m.mean, ref.mean) < 1e-6);
  QVERIFY(test::maxAbsDiff(m.var, ref.var) < 1e-6);
  QVERIFY(test::maxAbsDiff(z.grad(), z2.grad()) < 1e-6);
  QCOMPARE(m.count, int64_t(2 * kBatch));
  // grad_scale leaves the values alone and scales the gradient.
  auto z3 = globalLatents(2).requires_grad_(true);
  auto m3 = dist.globalBatchMoments(z3, 3.0);
  QVERIFY(torch::equal(m3.mean, m.mean));
  momentLoss(m3).backward();
  QVERIFY(test::maxAbsDiff(z3.grad(), 3.0 * z2.grad()) < 1e-6);
}

void TestDistributed::runCollectives(bool file_store) {
  if (!Distributed::backendAvailable(torch::kCPU)) QSKIP("built without Gloo headers (install libgloo-dev)");
  QTemporaryDir dir;
  QVERIFY(dir.isValid());
  const int port = freeLoopbackPort();
  const QString store = file_store ? dir.filePath("store") : QString();
  auto p0 = startRank("collectives", 0, 2, port, dir.path(), 20000, store);
  auto p1 = startRank("collectives", 1, 2, port, dir.path(), 20000, store);
  for (auto* p : {p0.get(), p1.get()}) {
    QVERIFY2(p->waitForFinished(40000), "a rank did not finish within 40 s");
    QVERIFY2(p->exitStatus() == QProcess::NormalExit && p->exitCode() == 0,
             qPrintable("rank failed: " + QString::fromUtf8(p->readAllStandardError())));
  }
  const std::string d = dir.path().toStdString();

  // Broadcast: rank 1 now holds rank 0's parameters, buffers (spectral-norm u/v), EMA and extras.
  auto before0 = load(d + "/rank0-before.pt"), before1 = load(d + "/rank1-before.pt");
  auto after0 = load(d + "/rank0-after.pt"), after1 = load(d + "/rank1-after.pt");
  QCOMPARE(after1.size(), before0.size());
  int changed = 0;
  for (size_t i = 0; i < after1.size(); ++i) {
    QVERIFY2(torch::equal(after1[i], before0[i]), qPrintable(QString("tensor %1 differs after broadcast").arg(i)));
    QVERIFY(torch::equal(after0[i], before0[i]));
    if (!torch::equal(before1[i], before0[i])) ++changed;
  }
  QVERIFY2(changed > 10, "the two ranks' models should have differed before the broadcast");

  // Bucketed all-reduce mean.
  auto g0 = rankGradients(0), g1 = rankGradients(1);
  for (int r : {0, 1}) {
    auto got = load(d + "/rank" + std::to_string(r) + "-grads.pt");
    QCOMPARE(got.size(), g0.size());
    for (size_t i = 0; i < got.size(); ++i) QVERIFY(test::maxAbsDiff(got[i], (g0[i] + g1[i]) / 2) < 1e-6);
  }

  // Global-batch moments: values and gradients equal one process with the doubled batch.
  auto z = globalLatents(2).requires_grad_(true);
  auto ref = singleProcessMoments(z);
  momentLoss(ref).backward();
  auto gen = at::detail::createCPUGenerator(9);
  auto w = torch::randn({kDim, kDim}, gen).requires_grad_(true);
  auto full = globalLatents(2).matmul(w);
  klFromMoments(singleProcessMoments(full)).backward();
  for (int r : {0, 1}) {
    auto got = load(d + "/rank" + std::to_string(r) + "-moments.pt");
    QVERIFY(test::maxAbsDiff(got[0], ref.mean) < 1e-6);
    QVERIFY(test::maxAbsDiff(got[1], ref.var) < 1e-6);
    QVERIFY2(test::maxAbsDiff(got[2], z.grad().narrow(0, r * kBatch, kBatch)) < 1e-6,
             "gradient w.r.t. this rank's rows differs from the single-process gradient");
    QVERIFY2(test::maxAbsDiff(got[3], w.grad()) < 1e-5,
             "averaged KL weight gradient differs from the single-process gradient");
    // 4 KiB buckets: the 7 gradients (28 B … 20 KB) go out in 4 all-reduce calls, {7, 300, 1},
    // {2048}, {5000}, {64, 3·5·7}, not one call per tensor.
    QCOMPARE(got[4].item<int64_t>(), int64_t(4));
  }
  // All-gather: the ranks' rows in rank order, on every rank.
  auto expected = torch::cat({torch::zeros({2, 3}), torch::ones({2, 3})});
  for (int r : {0, 1}) QVERIFY(torch::equal(load(d + "/rank" + std::to_string(r) + "-gathered.pt")[0], expected));
}

void TestDistributed::twoGlooRanksAgreeWithOneProcess() { runCollectives(false); }

void TestDistributed::fileStoreRendezvousWorks() { runCollectives(true); }

void TestDistributed::missingPeerFailsRendezvousInTime() {
  if (!Distributed::backendAvailable(torch::kCPU)) QSKIP("built without Gloo headers (install libgloo-dev)");
  QTemporaryDir dir;
  const auto start = std::chrono::steady_clock::now();
  auto p1 = startRank("collectives", 1, 2, freeLoopbackPort(), dir.path(), 2000);  // rank 0 never comes
  QVERIFY(p1->waitForFinished(30000));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  QVERIFY(p1->exitCode() != 0);
  const QString err = QString::fromUtf8(p1->readAllStandardError());
  QVERIFY2(err.contains("rendezvous at 127.0.0.1:"), qPrintable(err));
  QVERIFY2(s < 15.0, qPrintable(QString("took %1 s").arg(s)));
}

namespace {

/// Starts two looping ranks and waits until they exchanged data.
void startLoop(const QTemporaryDir& dir, std::unique_ptr<QProcess>& p0, std::unique_ptr<QProcess>& p1) {
  const int port = freeLoopbackPort();
  p0 = startRank("loop", 0, 2, port, dir.path());
  p1 = startRank("loop", 1, 2, port, dir.path());
  QByteArray out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!out.contains("ready") && std::chrono::steady_clock::now() < deadline) {
    p1->waitForReadyRead(200);
    out += p1->readAllStandardOutput();
    if (p0->state() == QProcess::NotRunning || p1->state() == QProcess::NotRunning) break;
  }
  QVERIFY2(out.contains("ready"), qPrintable("ranks did not connect: " + QString::fromUtf8(p0->readAllStandardError()) +
                                              QString::fromUtf8(p1->readAllStandardError())));
}

}  // namespace

void TestDistributed::killedRankStopsTheOtherInTime() {
  if (!Distributed::backendAvailable(torch::kCPU)) QSKIP("built without Gloo headers (install libgloo-dev)");
  QTemporaryDir dir;
  std::unique_ptr<QProcess> p0, p1;
  startLoop(dir, p0, p1);
  if (QTest::currentTestFailed()) return;
  const auto start = std::chrono::steady_clock::now();
  p1->kill();  // SIGKILL: no clean-up, like a crashed node
  p1->waitForFinished(5000);
  const bool stopped = p0->waitForFinished(kCollectiveTimeoutMs + 10000);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!stopped) p0->kill();
  QVERIFY2(stopped, "rank 0 kept running after rank 1 died");
  QVERIFY(p0->exitCode() != 0);
  const QString err = QString::fromUtf8(p0->readAllStandardError());
  QVERIFY2(err.contains("distributed training stopped") && err.contains("rank 0 of 2"), qPrintable(err));
  QVERIFY2(s < kCollectiveTimeoutMs / 1000.0 + 5.0, qPrintable(QString("took %1 s").arg(s)));
  qInfo("rank 0 stopped %.2f s after rank 1 was killed", s);
}

void TestDistributed::hungRankStopsTheOtherWithinTimeout() {
  if (!Distributed::backendAvailable(torch::kCPU)) QSKIP("built without Gloo headers (install libgloo-dev)");
  QTemporaryDir dir;
  std::unique_ptr<QProcess> p0, p1;
  startLoop(dir, p0, p1);
  if (QTest::currentTestFailed()) return;
  const auto start = std::chrono::steady_clock::now();
  ::kill(static_cast<pid_t>(p1->processId()), SIGSTOP);  // alive, sockets open, never answers
  const bool stopped = p0->waitForFinished(kCollectiveTimeoutMs + 10000);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ::kill(static_cast<pid_t>(p1->processId()), SIGKILL);
  p1->waitForFinished(5000);
  if (!stopped) p0->kill();
  QVERIFY2(stopped, "rank 0 hung with a stopped peer");
  QVERIFY(p0->exitCode() != 0);
  const QString err = QString::fromUtf8(p0->readAllStandardError());
  QVERIFY2(err.contains("distributed training stopped"), qPrintable(err));
  QVERIFY2(s < kCollectiveTimeoutMs / 1000.0 + 5.0, qPrintable(QString("took %1 s").arg(s)));
  qInfo("rank 0 stopped %.2f s after rank 1 hung (timeout %.1f s)", s, kCollectiveTimeoutMs / 1000.0);
}

namespace {

/// Starts `automod ARGS` as rank `rank` of `world` (world 0: no distributed environment at all).
std::unique_ptr<QProcess> startAutomod(const QStringList& args, int rank, int world, int port) {
  auto p = std::make_unique<QProcess>();
  auto env = QProcessEnvironment::systemEnvironment();
  for (const char* v : {"MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_NTASKS",
                        "SLURM_PROCID", "SLURM_LOCALID"})
    env.remove(v);
  if (world > 0) {
    env.insert("MASTER_ADDR", "127.0.0.1");
    env.insert("MASTER_PORT", QString::number(port));
    env.insert("RANK", QString::number(rank));
    env.insert("LOCAL_RANK", QString::number(rank));
    env.insert("WORLD_SIZE", QString::number(world));
  }
  env.insert("OMP_NUM_THREADS", "1");
  p->setProcessEnvironment(env);
  p->start(QString::fromStdString(test::automodBin()), args);
  return p;
}

/// Runs `world` ranks (or one plain process for world 0) to the end; returns rank 0's stdout.
QByteArray runRanks(const QStringList& args, int world) {
  const int port = freeLoopbackPort();
  std::vector<std::unique_ptr<QProcess>> ranks;
  for (int r = 0; r < std::max(1, world); ++r) ranks.push_back(startAutomod(args, r, world, port));
  QByteArray out0;
  for (size_t r = 0; r < ranks.size(); ++r) {
    auto& p = ranks[r];
    if (!p->waitForFinished(120000)) {
      p->kill();
      return "timeout";
    }
    const QByteArray out = p->readAllStandardOutput(), err = p->readAllStandardError();
    if (p->exitStatus() != QProcess::NormalExit || p->exitCode() != 0)
      return "rank " + QByteArray::number(int(r)) + " failed: " + err;
    if (r == 0) out0 = out;
  }
  return out0;
}

int64_t imagesSeen(const QByteArray& summary) {
  try {
    return nlohmann::json::parse(summary.toStdString()).at("images_seen").get<int64_t>();
  } catch (const std::exception&) {
    return -1;
  }
}

}  // namespace

void TestDistributed::trainTwoRanksThenResumeWithOneAndTwo() {
  if (!Distributed::backendAvailable(torch::kCPU)) QSKIP("built without Gloo headers (install libgloo-dev)");
  const auto help = test::runAutomod({"train", "--help"}, 60000);
  if (help.out.find("--distributed") == std::string::npos) QSKIP("automod train has no --distributed option");
  QTemporaryDir dir;
  const auto data = test::tmpPath(dir, "data");
  std::filesystem::create_directories(data);
  for (int i = 0; i < 40; ++i) test::writeTestImage(data / ("img" + std::to_string(i) + ".png"), 20, 20, i);
  const QString run = QString::fromStdString(test::tmpPath(dir, "run").string());
  const QStringList common{"--threads", "1", "--quiet", "train", "--data", QString::fromStdString(data.string()),
                           "--preset", "tiny", "--out", run, "--no-previews", "--seed", "3"};

  // Two ranks, batch 16 each: 3 steps of 32 images.
  auto out = runRanks(common + QStringList{"--max-images", "96"}, 2);
  QVERIFY2(imagesSeen(out) == 96, out.constData());
  QVERIFY(std::filesystem::exists(std::filesystem::path(run.toStdString()) / "latest.amod"));
  // Resume with one process (batch 16), then with two ranks again.
  out = runRanks(common + QStringList{"--resume", "--max-images", "128"}, 0);
  QVERIFY2(imagesSeen(out) == 128, out.constData());
  out = runRanks(common + QStringList{"--resume", "--max-images", "192"}, 2);
  QVERIFY2(imagesSeen(out) == 192, out.constData());
}

void TestDistributed::twoTrainingRanksEqualOneProcessWithDoubledBatch() {
  if (!Distributed::backendAvailable(torch::kCPU)) QSKIP("built without Gloo headers (install libgloo-dev)");
  QTemporaryDir dir;
  QVERIFY(dir.isValid());
  const std::string d = dir.path().toStdString();
  // Two ranks with batch 5 (one torch thread each) ...
  const int port = freeLoopbackPort();
  auto p0 = startRank("train", 0, 2, port, dir.path());
  auto p1 = startRank("train", 1, 2, port, dir.path());
  for (auto* p : {p0.get(), p1.get()}) {
    QVERIFY2(p->waitForFinished(90000), "a training rank did not finish within 90 s");
    QVERIFY2(p->exitStatus() == QProcess::NormalExit && p->exitCode() == 0,
             qPrintable("rank failed: " + QString::fromUtf8(p->readAllStandardError())));
  }
  // ... and one process with batch 10, same seed (this process runs with one thread too).
  {
    Trainer single(trainConfig(d + "/single", 2 * kTrainBatch), trainImages());
    QCOMPARE(single.run().status, TrainingResult::Finished);
  }
  auto ranks = readArchive(d + "/ranks/latest.amod");
  auto single = readArchive(d + "/single/latest.amod");
  QCOMPARE(ranks.header["training"]["images_seen"].get<int64_t>(), kTrainImages);
  QCOMPARE(single.header["training"]["images_seen"].get<int64_t>(), kTrainImages);
  QCOMPARE(ranks.header["training"]["stage"].get<int>(), 1);
  QVERIFY(single.has("pool.images"));
  // The generators drew the same numbers in the same order.
  QVERIFY(torch::equal(ranks.get("rng.cpu"), single.get("rng.cpu")));
  // Every weight, buffer (spectral-norm vectors), EMA weight, robust-loss parameter and pooled image
  // agrees to float rounding (measured: ≤ 5.5e-7 for weights, 1.1e-5 for pooled images of magnitude
  // ~6, after 16 steps). One exception: decoder block 0's conv1 sees the constant input ξ⁽⁰⁾ and
  // feeds an instance norm, so its gradient is (nearly) zero in exact arithmetic; Adam normalises
  // that gradient, so rounding differences become ±lr steps (measured ≤ 0.011 = 2.5 steps of lr 2e-3).
  double worst = 0.0, worst_block0 = 0.0;
  std::string worst_name;
  int compared = 0;
  for (auto& [name, t] : single.tensors) {
    if (name.rfind("optim.", 0) == 0 || name == "rng.cpu") continue;
    QVERIFY2(ranks.has(name), name.c_str());
    const double diff = test::maxAbsDiff(t.to(torch::kFloat64), ranks.get(name).to(torch::kFloat64));
    if (name.find("blocks.0.conv1.") != std::string::npos && name.rfind("encoder.", 0) != 0) {
      worst_block0 = std::max(worst_block0, diff);
    } else if (diff > worst) {
      worst = diff;
      worst_name = name;
    }
    ++compared;
  }
  QVERIFY(compared > 40);
  qInfo("2 ranks x batch %d vs 1 process x batch %d after %lld images: %d tensors, max |diff| %.3g (%s); "
        "decoder block 0 conv1 %.3g",
        kTrainBatch, 2 * kTrainBatch, static_cast<long long>(kTrainImages), compared, worst, worst_name.c_str(),
        worst_block0);
  QVERIFY2(worst < kTrainTolerance, qPrintable(QString("max |diff| %1 in %2").arg(worst).arg(worst_name.c_str())));
  QVERIFY2(worst_block0 < 0.05, qPrintable(QString("decoder block 0 conv1 differs by %1").arg(worst_block0)));
  // Training moved the weights far more than that.
  {
    Trainer fresh(trainConfig(d + "/fresh", 2 * kTrainBatch), trainImages());
    double moved = 0.0;
    for (auto& [name, t] : namedState(fresh.model()))
      if (name.rfind("decoder.", 0) == 0) moved = std::max(moved, test::maxAbsDiff(t, single.get(name)));
    qInfo("largest decoder weight change in the run: %.3g", moved);
    QVERIFY(moved > 100 * kTrainTolerance);
  }
  // Rank 1 ends with rank 0's weights.
  auto w0 = load(d + "/rank0-trained.pt"), w1 = load(d + "/rank1-trained.pt");
  QCOMPARE(w0.size(), w1.size());
  for (size_t i = 0; i < w0.size(); ++i) QVERIFY2(torch::equal(w0[i], w1[i]), qPrintable(QString("tensor %1").arg(i)));
}

QTEST_GUILESS_MAIN(TestDistributed)
#include "tst_distributed.moc"
