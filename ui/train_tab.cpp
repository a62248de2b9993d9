#include "ui/train_tab.h"
#include "ui/file_dialogs.h"

#include <QComboBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QSpinBox>
#include <QStandardPaths>
#include <QTime>
#include <QVBoxLayout>

#include <ctime>

#include "training/run_folder.h"
#include <QtCharts/QChart>
#include <QtCharts/QChartView>
#include <QtCharts/QLineSeries>
#include <QtCharts/QValueAxis>

namespace automod::ui {

namespace {
QString formatEta(double seconds) {
  if (seconds < 0) return QObject::tr("estimating…");
  const qint64 s = qint64(seconds);
  return s >= 3600 ? QString("%1 h %2 min").arg(s / 3600).arg((s % 3600) / 60)
                   : QString("%1 min %2 s").arg(s / 60).arg(s % 60);
}
QLabel* gridLabel(const QString& tip) {
  auto* l = new QLabel;
  l->setMinimumSize(160, 120);
  l->setAlignment(Qt::AlignCenter);
  l->setToolTip(tip);
  l->setFrameShape(QFrame::StyledPanel);
  return l;
}
}  // namespace

TrainTab::TrainTab(QWidget* parent) : QWidget(parent) {
  auto* layout = new QHBoxLayout(this);
  auto* left = new QVBoxLayout;
  left->addWidget(createForm());
  left->addLayout(createButtons());
  progress_ = new QProgressBar(this);
  progress_->setRange(0, 1000);
  progress_->setValue(0);
  progress_->setTextVisible(true);
  left->addWidget(progress_);
  status_ = new QLabel(this);
  left->addWidget(status_);
  log_ = new QPlainTextEdit(this);
  log_->setReadOnly(true);
  log_->setMaximumBlockCount(2000);
  log_->setAccessibleName(tr("Training log"));
  left->addWidget(log_, 1);
  layout->addLayout(left, 2);
  layout->addLayout(createMonitor(), 3);

  connect(&controller_, &TrainController::stateChanged, this, &TrainTab::updateButtons);
  connect(&controller_, &TrainController::progress, this, &TrainTab::onProgress);
  connect(&controller_, &TrainController::preview, this, &TrainTab::onPreview);
  connect(&controller_, &TrainController::message, this, &TrainTab::log);
  connect(&controller_, &TrainController::finished, this,
          [this](TrainController::State s, const QString& latest, const QString& error) {
            if (s == TrainController::Failed)
              log(tr("Training failed: %1").arg(error));
            else
              log(tr("Training %1; the model is %2").arg(s == TrainController::Finished ? tr("finished") : tr("stopped"),
                                                         latest));
            // The next run gets a folder of its own.
            out_edited_ = false;
            proposeOutput();
          });
  proposeOutput();
  updateButtons();
}

QWidget* TrainTab::createForm() {
  auto* form_box = new QGroupBox(tr("Run"), this);
  auto* form = new QFormLayout(form_box);
  data_ = new QComboBox(form_box);
  data_->addItem(tr("Synthetic faces"), TrainRequest::Faces);
  data_->addItem(tr("Image folder"), TrainRequest::Folder);
  data_->addItem(tr("Fashion-MNIST"), TrainRequest::FashionMnist);
  data_->setToolTip(tr("What to train on"));
  form->addRow(tr("&Data:"), data_);
  auto* folder_row = new QHBoxLayout;
  folder_ = new QLineEdit(form_box);
  folder_->setPlaceholderText(tr("a folder of photos"));
  auto* browse = new QPushButton(tr("…"), form_box);
  browse->setToolTip(tr("Choose the image folder"));
  connect(browse, &QPushButton::clicked, this, [this] {
    const auto d = QFileDialog::getExistingDirectory(
        this, tr("Image Folder"), folder_->text().isEmpty() ? startDirectory("training-data") : folder_->text());
    if (d.isEmpty()) return;
    rememberDirectory("training-data", d);
    folder_->setText(d);
  });
  folder_row->addWidget(folder_);
  folder_row->addWidget(browse);
  // A label with a buddy widget: a row with a layout as its field would show the "&" literally.
  auto* folder_label = new QLabel(tr("&Folder:"), form_box);
  folder_label->setBuddy(folder_);
  form->addRow(folder_label, folder_row);
  faces_ = new QSpinBox(form_box);
  faces_->setRange(16, 100000);
  faces_->setValue(200);
  faces_->setToolTip(tr("How many synthetic faces to generate"));
  form->addRow(tr("Fa&ces:"), faces_);
  preset_ = new QComboBox(form_box);
  preset_->addItems(TrainController::presets());
  if (int i = preset_->findText("tiny"); i >= 0) preset_->setCurrentIndex(i);
  preset_->setToolTip(tr("Model size and schedule; the small presets finish in minutes on a CPU"));
  form->addRow(tr("&Preset:"), preset_);
  out_ = new QLineEdit(form_box);
  out_->setToolTip(tr("The run folder: checkpoints, previews and the log. Each run gets a folder of its own."));
  connect(out_, &QLineEdit::textEdited, this, [this] { out_edited_ = true; });
  form->addRow(tr("&Output:"), out_);
  max_images_ = new QSpinBox(form_box);
  max_images_->setRange(0, 2000000000);
  max_images_->setSpecialValueText(tr("the preset's length"));
  max_images_->setToolTip(tr("Stop after this many images (0 = the whole preset)"));
  form->addRow(tr("&Max images:"), max_images_);
  connect(data_, &QComboBox::currentIndexChanged, this, [this] {
    updateButtons();
    proposeOutput();
  });
  connect(preset_, &QComboBox::currentIndexChanged, this, &TrainTab::proposeOutput);
  connect(folder_, &QLineEdit::textChanged, this, &TrainTab::proposeOutput);
  return form_box;
}

QLayout* TrainTab::createButtons() {
  auto* buttons = new QHBoxLayout;
  start_ = new QPushButton(tr("&Start"), this);
  pause_ = new QPushButton(tr("&Pause"), this);
  stop_ = new QPushButton(tr("S&top"), this);
  open_ = new QPushButton(tr("Open in &Editor"), this);
  start_->setToolTip(tr("Start training in the background"));
  pause_->setToolTip(tr("Pause or resume the run"));
  stop_->setToolTip(tr("Checkpoint and stop"));
  open_->setToolTip(tr("Open the run's latest model in the editor (your photos stay and are re-encoded)"));
  for (auto* b : {start_, pause_, stop_, open_}) buttons->addWidget(b);
  connect(start_, &QPushButton::clicked, this, &TrainTab::startTraining);
  connect(pause_, &QPushButton::clicked, this, [this] {
    controller_.state() == TrainController::Paused ? controller_.resume() : controller_.pause();
  });
  connect(stop_, &QPushButton::clicked, &controller_, &TrainController::stop);
  connect(open_, &QPushButton::clicked, this, [this] { Q_EMIT openModelRequested(controller_.latestModel()); });
  return buttons;
}

QLayout* TrainTab::createMonitor() {
  auto* right = new QVBoxLayout;
  auto* chart = new QChart;
  chart->setTitle(tr("Losses"));
  enc_series_ = new QLineSeries(chart);
  enc_series_->setName(tr("encoder"));
  dec_series_ = new QLineSeries(chart);
  dec_series_->setName(tr("decoder"));
  chart->addSeries(enc_series_);
  chart->addSeries(dec_series_);
  axis_x_ = new QValueAxis(chart);
  axis_x_->setTitleText(tr("images seen"));
  axis_y_ = new QValueAxis(chart);
  chart->addAxis(axis_x_, Qt::AlignBottom);
  chart->addAxis(axis_y_, Qt::AlignLeft);
  for (auto* s : {enc_series_, dec_series_}) {
    s->attachAxis(axis_x_);
    s->attachAxis(axis_y_);
  }
  auto* view = new QChartView(chart, this);
  view->setRenderHint(QPainter::Antialiasing);
  view->setMinimumHeight(220);
  right->addWidget(view, 2);
  auto* grids = new QHBoxLayout;
  samples_ = gridLabel(tr("Random samples"));
  recons_ = gridLabel(tr("Held-out images and their reconstructions"));
  mixes_ = gridLabel(tr("Mixes: A, B, then A with B's coarse, intermediate and fine scales"));
  for (auto* l : {samples_, recons_, mixes_}) grids->addWidget(l);
  right->addLayout(grids, 1);
  return right;
}

QString TrainTab::proposedRunFolder() const {
  const QString parent =
      QDir(QStandardPaths::writableLocation(QStandardPaths::AppLocalDataLocation)).filePath("runs");
  QString data;
  switch (TrainRequest::Data(data_->currentData().toInt())) {
    case TrainRequest::Faces: data = "faces"; break;
    case TrainRequest::FashionMnist: data = "fashion-mnist"; break;
    case TrainRequest::Folder:
      data = folder_->text().isEmpty() ? QStringLiteral("photos") : QFileInfo(folder_->text()).fileName();
      break;
  }
  return QString::fromStdString(
      proposeRunFolder(parent.toStdString(), preset_->currentText().toStdString(), data.toStdString(), std::time(nullptr))
          .string());
}

void TrainTab::proposeOutput() {
  if (out_edited_ || controller_.isActive()) return;
  out_->setText(proposedRunFolder());
}

int TrainTab::lossPoints() const { return enc_series_->count(); }

void TrainTab::startTraining() {
  TrainRequest r;
  // Runs never overwrite runs: a folder that holds one is continued, or the run goes elsewhere.
  if (const auto held = inspectRunFolder(out_->text().toStdString()); held.holds_run) {
    auto choice = existing_choice_;
    if (choice == ExistingRun::Ask) {
      QMessageBox box(QMessageBox::Question, tr("Start Training"),
                      tr("%1 already holds a run%2.")
                          .arg(QDir::toNativeSeparators(out_->text()),
                               held.images_seen >= 0 ? tr(" (%1 images)").arg(held.images_seen) : QString()),
                      QMessageBox::Cancel, this);
      box.setInformativeText(tr("Continue that run, or start this one in a new folder?"));
      auto* resume = box.addButton(tr("&Resume It"), QMessageBox::AcceptRole);
      auto* fresh = box.addButton(tr("&New Folder"), QMessageBox::ActionRole);
      box.setDefaultButton(fresh);
      box.exec();
      choice = box.clickedButton() == resume ? ExistingRun::Resume
               : box.clickedButton() == fresh ? ExistingRun::NewFolder
                                              : ExistingRun::Cancel;
    }
    if (choice == ExistingRun::Cancel) return;
    if (choice == ExistingRun::NewFolder) {
      out_edited_ = false;
      out_->setText(proposedRunFolder());
    } else {
      r.resume = true;
    }
  }
  r.data = TrainRequest::Data(data_->currentData().toInt());
  r.folder = folder_->text();
  r.faces = faces_->value();
  r.preset = preset_->currentText();
  r.outDir = out_->text();
  r.maxImages = max_images_->value();
  enc_series_->clear();
  dec_series_->clear();
  y_min_ = 1e30;
  y_max_ = -1e30;
  progress_->setValue(0);
  log(r.resume ? tr("Resuming the run in %1").arg(r.outDir)
               : tr("Starting %1 on %2 → %3").arg(r.preset, data_->currentText(), r.outDir));
  controller_.start(r);
}

void TrainTab::updateButtons() {
  const auto s = controller_.state();
  const bool active = controller_.isActive();
  start_->setEnabled(!active);
  pause_->setEnabled(s == TrainController::Running || s == TrainController::Paused);
  pause_->setText(s == TrainController::Paused ? tr("&Resume") : tr("&Pause"));
  stop_->setEnabled(active);
  open_->setEnabled(!active && !controller_.latestModel().isEmpty());
  const auto kind = TrainRequest::Data(data_->currentData().toInt());
  folder_->setEnabled(kind == TrainRequest::Folder && !active);
  faces_->setEnabled(kind == TrainRequest::Faces && !active);
  status_->setText(QVariant::fromValue(s).toString());
}

void TrainTab::onProgress(const TrainProgressInfo& p) {
  if (p.targetImages > 0) progress_->setValue(int(1000.0 * p.imagesSeen / p.targetImages));
  progress_->setFormat(tr("%1 / %2 images · %3 px · ETA %4")
                           .arg(p.imagesSeen)
                           .arg(p.targetImages)
                           .arg(p.resolution)
                           .arg(formatEta(p.etaSeconds)));
  enc_series_->append(double(p.imagesSeen), p.encoderLoss);
  dec_series_->append(double(p.imagesSeen), p.decoderLoss);
  y_min_ = std::min({y_min_, p.encoderLoss, p.decoderLoss});
  y_max_ = std::max({y_max_, p.encoderLoss, p.decoderLoss});
  axis_x_->setRange(0, std::max<double>(1, p.imagesSeen));
  axis_y_->setRange(y_min_, y_max_ > y_min_ ? y_max_ : y_min_ + 1);
}

void TrainTab::onPreview(const TrainPreviewImages& images) {
  auto show = [](QLabel* l, const QImage& im) {
    if (!im.isNull()) l->setPixmap(QPixmap::fromImage(im).scaled(l->size(), Qt::KeepAspectRatio, Qt::FastTransformation));
  };
  show(samples_, images.samples);
  show(recons_, images.reconstructions);
  show(mixes_, images.mixes);
}

void TrainTab::log(const QString& text) {
  log_->appendPlainText(QTime::currentTime().toString("HH:mm:ss ") + text);
}

}  // namespace automod::ui
