// The model library (Model → Library): download, import and open the authors' released models.
#include <torch/torch.h>

#include "ui/model_library.h"

#include <QButtonGroup>
#include <QDialogButtonBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QHeaderView>
#include <QLabel>
#include <QProgressBar>
#include <QPushButton>
#include <QRadioButton>
#include <QStandardPaths>
#include <QTableWidget>
#include <QVBoxLayout>
#include <QtConcurrent>

#include "core/align/photo.h"
#include "core/io/model_file.h"
#include "core/io/reference_import.h"
#include "core/model/automodulator.h"
#include "core/util/error.h"
#include "ui/downloader.h"
#include "ui/file_dialogs.h"

namespace automod::ui {

namespace {
enum Column { Name, Resolution, Architecture, Photos, Size, Source, State, Columns };

QString dataFolder() { return QStandardPaths::writableLocation(QStandardPaths::AppDataLocation); }

QString megabytes(qint64 bytes) { return QObject::tr("%1 MB").arg(double(bytes) / 1e6, 0, 'f', 1); }

QString alignmentWords(const QString& a) {
  if (a == "celebahq") return QObject::tr("CelebA-HQ aligned");
  if (a == "none") return QObject::tr("centre crop");
  return QObject::tr("FFHQ aligned");
}
}  // namespace

QString libraryModelsFolder() { return QDir(dataFolder()).filePath("models"); }
QString libraryDownloadsFolder() { return QDir(dataFolder()).filePath("downloads"); }

QFuture<ImportOutcome> importCheckpointInBackground(const QString& checkpoint, const QString& model,
                                                   const QString& alignment, const QString& alignment_source) {
  return QtConcurrent::run([checkpoint, model, alignment, alignment_source] {
    ImportOutcome out;
    try {
      ReferenceImportOptions options;
      options.alignment = alignment.toStdString();
      options.alignment_source = alignment_source.toStdString();
      auto imported = importReferenceFile(checkpoint.toStdString(), options);
      if (!QDir().mkpath(QFileInfo(model).absolutePath()))
        throw Error("cannot create the folder " + QFileInfo(model).absolutePath().toStdString());
      // Written beside the target, then renamed: nothing half-written carries the model's name.
      const QString temporary = model + ".importing";
      saveModel(temporary.toStdString(), *imported.model);
      QFile::remove(model);
      if (!QFile::rename(temporary, model)) {
        QFile::remove(temporary);
        throw Error("cannot write " + model.toStdString());
      }
      out.model = model;
      for (const auto& s : imported.not_carried) out.notCarried << QString::fromStdString(s);
      out.sha256 = QString::fromStdString(imported.provenance.value("sha256", std::string()));
      out.alignment = QString::fromStdString(imported.alignment);
      out.alignmentReason = QString::fromStdString(imported.alignment_reason);
    } catch (const std::exception& e) {
      out.error = QString::fromStdString(errorMessage(e));
    }
    return out;
  });
}

AlignmentDialog::AlignmentDialog(QWidget* parent, const QString& file_name) : QDialog(parent) {
  setWindowTitle(tr("How Were Its Photos Prepared?"));
  auto* layout = new QVBoxLayout(this);
  auto* intro = new QLabel(tr("%1 is not one of the authors' released models, so the file does not say how the "
                              "photos it was trained on were prepared. Photos you give it will be prepared the "
                              "same way:")
                               .arg(file_name),
                           this);
  intro->setWordWrap(true);
  layout->addWidget(intro);
  group_ = new QButtonGroup(this);
  const std::pair<const char*, QString> choices[] = {
      {"ffhq", tr("&Faces, aligned as in FFHQ")},
      {"celebahq", tr("Faces, aligned as in &CelebA-HQ")},
      {"none", tr("&No alignment: scenes such as bedrooms or cars (photos are centre-cropped, faces never searched)")},
  };
  for (const auto& [name, text] : choices) {
    auto* b = new QRadioButton(text, this);
    b->setObjectName(QString::fromLatin1(name));
    group_->addButton(b);
    layout->addWidget(b);
  }
  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
  ok_ = buttons->button(QDialogButtonBox::Ok);
  ok_->setText(tr("&Import"));
  ok_->setEnabled(false);  // no default: the choice is the user's
  layout->addWidget(buttons);
  connect(group_, &QButtonGroup::buttonClicked, this, [this] { ok_->setEnabled(true); });
  connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
}

QString AlignmentDialog::alignment() const {
  return group_->checkedButton() ? group_->checkedButton()->objectName() : QString();
}

void AlignmentDialog::choose(const QString& alignment) {
  for (auto* b : group_->buttons())
    if (b->objectName() == alignment) b->click();
}

bool askAlignmentIfNeeded(QWidget* parent, const QString& checkpoint, QString* alignment) {
  alignment->clear();
  try {
    if (!needsAlignmentChoice(std::filesystem::path(checkpoint.toStdString()))) return true;
  } catch (const std::exception&) {
    return true;  // the import says what is wrong with the file
  }
  AlignmentDialog d(parent, QFileInfo(checkpoint).fileName());
  if (d.exec() != QDialog::Accepted || d.alignment().isEmpty()) return false;
  *alignment = d.alignment();
  return true;
}

QVector<LibraryEntry> ModelLibraryDialog::releasedEntries(const QUrl& base) {
  QVector<LibraryEntry> out;
  for (const auto& m : releasedModels()) {
    LibraryEntry e;
    e.name = QString::fromStdString(m.name);
    e.resolution = m.resolution;
    e.architecture = QString::fromStdString(m.architecture);
    e.alignment = QString::fromStdString(m.alignment);
    e.file = QString::fromStdString(releasedModelFile(m));
    e.source = QObject::tr("the authors (Zenodo record 4298894)");
    e.url = base.isEmpty() ? QUrl(QString::fromStdString(releasedModelUrl(m)))
                           : base.resolved(QUrl(e.file));
    out << e;
  }
  return out;
}

QString ModelLibraryDialog::modelPathFor(const LibraryEntry& entry) {
  if (!entry.path.isEmpty()) return entry.path;
  if (entry.url.isEmpty()) return QDir(libraryModelsFolder()).filePath(entry.name);
  return QDir(libraryModelsFolder()).filePath(entry.name + ".amod");
}

ModelLibraryDialog::ModelLibraryDialog(QWidget* parent, const QUrl& base)
    : QDialog(parent), released_(releasedEntries(base)), download_job_(new FileDownload(this)) {
  setWindowTitle(tr("Model Library"));
  auto* layout = new QVBoxLayout(this);
  auto* intro = new QLabel(tr("The paper authors' released models and the models you imported or trained. "
                              "Downloads and imports go to %1.")
                               .arg(QDir::toNativeSeparators(dataFolder())),
                           this);
  intro->setWordWrap(true);
  layout->addWidget(intro);
  table_ = new QTableWidget(0, Columns, this);
  table_->setHorizontalHeaderLabels({tr("Model"), tr("Resolution"), tr("Architecture"), tr("Photos"), tr("Size"),
                                     tr("Source"), tr("State")});
  table_->setSelectionBehavior(QAbstractItemView::SelectRows);
  table_->setSelectionMode(QAbstractItemView::SingleSelection);
  table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  table_->verticalHeader()->hide();
  table_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  table_->horizontalHeader()->setStretchLastSection(true);
  table_->setAccessibleName(tr("Models"));
  layout->addWidget(table_, 1);
  progress_ = new QProgressBar(this);
  progress_->setVisible(false);
  layout->addWidget(progress_);
  status_ = new QLabel(this);
  status_->setWordWrap(true);
  status_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  layout->addWidget(status_);
  auto* buttons = new QDialogButtonBox(this);
  download_ = buttons->addButton(tr("&Download"), QDialogButtonBox::ActionRole);
  download_->setToolTip(tr("Fetch the selected model (continues a partial download), check and import it"));
  cancel_ = buttons->addButton(tr("&Cancel Download"), QDialogButtonBox::ActionRole);
  import_ = buttons->addButton(tr("&Import a File You Downloaded…"), QDialogButtonBox::ActionRole);
  import_->setToolTip(tr("An authors' checkpoint (<iteration>_state.pth) already on this computer"));
  open_ = buttons->addButton(tr("&Open"), QDialogButtonBox::AcceptRole);
  buttons->addButton(QDialogButtonBox::Close);
  layout->addWidget(buttons);
  resize(820, 420);

  connect(download_, &QPushButton::clicked, this, &ModelLibraryDialog::downloadSelected);
  connect(cancel_, &QPushButton::clicked, download_job_, &FileDownload::cancel);
  connect(open_, &QPushButton::clicked, this, &ModelLibraryDialog::openSelected);
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
  connect(import_, &QPushButton::clicked, this, [this] {
    const auto path = QFileDialog::getOpenFileName(this, tr("Import Checkpoint"), startDirectory("checkpoints"),
                                                   tr("Checkpoints (*.pth *.pt);;All files (*)"));
    if (path.isEmpty()) return;
    rememberDirectory("checkpoints", path);
    importFile(path);
  });
  connect(table_, &QTableWidget::itemSelectionChanged, this, &ModelLibraryDialog::updateButtons);
  connect(table_, &QTableWidget::cellDoubleClicked, this, [this] {
    const auto* e = selected();
    if (e && QFileInfo::exists(modelPathFor(*e))) openSelected();
  });
  connect(download_job_, &FileDownload::progress, this, [this](qint64 received, qint64 total) {
    progress_->setVisible(true);
    if (total > 0) {
      progress_->setRange(0, 1000);
      progress_->setValue(int(1000 * received / total));
      progress_->setFormat(tr("%1 of %2").arg(megabytes(received), megabytes(total)));
    } else {
      progress_->setRange(0, 0);
    }
  });
  connect(download_job_, &FileDownload::finished, this,
          [this](bool ok, const QString& message, const QString& sha256, bool resumed) {
            progress_->setVisible(false);
            const QString name = downloading_;
            downloading_.clear();
            auto it = std::find_if(released_.begin(), released_.end(), [&](const auto& e) { return e.name == name; });
            if (!ok || it == released_.end()) {
              setStatus(tr("Cannot download %1: %2.").arg(name, message) +
                        (message.contains("offline") ? tr(" Use “Import a File You Downloaded…” for a file you have.")
                                                     : QString()));
              refresh();
              Q_EMIT downloadFinished(false, {});
              return;
            }
            Q_EMIT downloadFinished(true, sha256);
            const QString file = QDir(libraryDownloadsFolder()).filePath(it->file);
            setStatus(tr("Downloaded %1%2 (SHA-256 %3); importing…")
                          .arg(it->file, resumed ? tr(", continuing the earlier part") : QString(), sha256));
            startImport(file, modelPathFor(*it), it->alignment, tr("the library entry %1").arg(it->name));
          });
  connect(&import_watcher_, &QFutureWatcher<ImportOutcome>::finished, this, [this] {
    importing_ = false;
    progress_->setVisible(false);
    const ImportOutcome r = import_watcher_.result();
    refresh();
    if (!r.error.isEmpty()) {
      setStatus(tr("Cannot import: %1").arg(r.error));
      Q_EMIT importFinished({});
      return;
    }
    setStatus(tr("Imported %1 (photos: %2, %3; checkpoint SHA-256 %4).%5")
                  .arg(QFileInfo(r.model).fileName(), alignmentWords(r.alignment), r.alignmentReason, r.sha256,
                       r.notCarried.isEmpty() ? QString() : tr(" Not carried over: %1.").arg(r.notCarried.join("; "))));
    for (int row = 0; row < table_->rowCount(); ++row)
      if (table_->item(row, State)->data(Qt::UserRole).toString() == r.model) table_->selectRow(row);
    Q_EMIT importFinished(r.model);
  });
  refresh();
  setStatus(tr("Select a model. Download fetches and imports it (a few hundred MB); Open uses it in the editor."));
}

void ModelLibraryDialog::refresh() {
  const QString keep = selected() ? selected()->name : QString();
  local_.clear();
  QStringList released_models;
  for (const auto& e : released_) released_models << e.name + ".amod";
  auto addLocal = [this](const QString& name, const QString& source, const QFileInfo& file) {
    LibraryEntry e;
    e.name = name;
    e.source = source;
    e.bytes = file.size();
    e.path = file.absoluteFilePath();
    // Its details from the file's header (a few milliseconds: no weights are read); a file that does
    // not read keeps "–" and says why when opened.
    try {
      const auto info = describeModelFile(e.path.toStdString());
      e.resolution = info.value("resolution", 0);
      const auto& metadata = info.value("metadata", nlohmann::json::object());
      const auto provenance = metadata.value("provenance", nlohmann::json::object());
      if (provenance.contains("architecture") && provenance["architecture"].is_string())
        e.architecture = QString::fromStdString(provenance["architecture"].get<std::string>());
      else if (info.contains("config") && info["config"].value("width_table", nlohmann::json()).is_string())
        e.architecture = QString::fromStdString(info["config"]["width_table"].get<std::string>());
      if (metadata.is_object()) e.alignment = QString::fromStdString(modelAlignment(metadata));
    } catch (const std::exception&) {
    }
    local_ << e;
  };
  const QDir models(libraryModelsFolder());
  for (const auto& info : models.entryInfoList({"*.amod"}, QDir::Files, QDir::Name))
    if (!released_models.contains(info.fileName())) addLocal(info.fileName(), tr("imported or trained here"), info);
  // The Train tab's runs (its proposed folders are <data>/runs/<preset>-<data>-<date>).
  const QDir runs(QDir(dataFolder()).filePath("runs"));
  for (const auto& run : runs.entryInfoList(QDir::Dirs | QDir::NoDotAndDotDot, QDir::Time)) {
    const QFileInfo latest(QDir(run.absoluteFilePath()).filePath("latest.amod"));
    if (latest.isFile()) addLocal(run.fileName(), tr("trained here (Train tab run)"), latest);
  }
  table_->setRowCount(int(released_.size() + local_.size()));
  int row = 0;
  for (const auto* list : {&released_, &local_})
    for (const auto& e : *list) {
      QString state;
      const QString model = modelPathFor(e);
      const QString download = QDir(libraryDownloadsFolder()).filePath(e.file);
      qint64 bytes = e.bytes;
      if (QFileInfo::exists(model)) {
        state = e.url.isEmpty() ? tr("ready") : tr("imported");
        if (bytes < 0) bytes = QFileInfo(model).size();
      } else if (!e.file.isEmpty() && QFileInfo::exists(download)) {
        state = tr("downloaded, not imported");
        bytes = QFileInfo(download).size();
      } else if (!e.file.isEmpty() && QFileInfo::exists(FileDownload::partPath(download))) {
        state = tr("partly downloaded (%1)").arg(megabytes(QFileInfo(FileDownload::partPath(download)).size()));
      } else {
        state = tr("not downloaded");
      }
      if (e.name == downloading_) state = tr("downloading…");
      const QStringList cells{e.name,
                              e.resolution > 0 ? tr("%1 px").arg(e.resolution) : tr("–"),
                              e.architecture.isEmpty() ? tr("–") : e.architecture,
                              e.alignment.isEmpty() ? tr("–") : alignmentWords(e.alignment),
                              bytes > 0 ? megabytes(bytes) : tr("shown when downloading"),
                              e.source,
                              state};
      for (int c = 0; c < Columns; ++c) table_->setItem(row, c, new QTableWidgetItem(cells[c]));
      table_->item(row, Name)->setToolTip(e.url.isEmpty() ? model : e.url.toString());
      table_->item(row, State)->setData(Qt::UserRole, model);
      ++row;
    }
  if (!keep.isEmpty()) select(keep);
  updateButtons();
}

const LibraryEntry* ModelLibraryDialog::selected() const {
  const auto rows = table_->selectionModel() ? table_->selectionModel()->selectedRows() : QModelIndexList{};
  if (rows.isEmpty()) return nullptr;
  const int row = rows.front().row();
  if (row < released_.size()) return &released_[row];
  if (row - released_.size() < local_.size()) return &local_[row - released_.size()];
  return nullptr;
}

bool ModelLibraryDialog::select(const QString& name) {
  for (int row = 0; row < table_->rowCount(); ++row)
    if (table_->item(row, Name)->text() == name) {
      table_->selectRow(row);
      return true;
    }
  return false;
}

void ModelLibraryDialog::updateButtons() {
  const auto* e = selected();
  const bool busy = download_job_->isRunning() || importing_;
  download_->setEnabled(e && !e->url.isEmpty() && !busy && !QFileInfo::exists(modelPathFor(*e)));
  cancel_->setEnabled(download_job_->isRunning());
  open_->setEnabled(e && !busy && QFileInfo::exists(modelPathFor(*e)));
  import_->setEnabled(!busy);
}

QString ModelLibraryDialog::statusText() const { return status_->text(); }

void ModelLibraryDialog::setStatus(const QString& text) { status_->setText(text); }

void ModelLibraryDialog::downloadSelected() {
  const auto* e = selected();
  if (!e || e->url.isEmpty() || download_job_->isRunning() || importing_) return;
  const QString file = QDir(libraryDownloadsFolder()).filePath(e->file);
  if (QFileInfo::exists(file)) {  // downloaded before, not imported yet
    setStatus(tr("%1 is already downloaded; importing…").arg(e->file));
    startImport(file, modelPathFor(*e), e->alignment, tr("the library entry %1").arg(e->name));
    return;
  }
  QString error;
  downloading_ = e->name;
  const QString name = e->name;
  if (!download_job_->start(e->url, file, &error)) {
    downloading_.clear();
    setStatus(tr("Cannot download %1: %2").arg(name, error));
    return;
  }
  setStatus(tr("Downloading %1 from %2…").arg(name, e->url.host()));
  progress_->setVisible(true);
  progress_->setRange(0, 0);
  refresh();
}

void ModelLibraryDialog::openSelected() {
  const auto* e = selected();
  if (!e || !QFileInfo::exists(modelPathFor(*e))) return;
  Q_EMIT modelChosen(modelPathFor(*e));
  accept();
}

void ModelLibraryDialog::importFile(const QString& checkpoint) {
  if (download_job_->isRunning() || importing_) return;
  QString name = QFileInfo(checkpoint).completeBaseName();
  for (const auto& e : released_)
    if (QFileInfo(checkpoint).fileName() == e.file) name = e.name;  // a released file keeps its model's name
  const QString model = QDir(libraryModelsFolder()).filePath(name + ".amod");
  QString alignment;
  if (!askAlignmentIfNeeded(this, checkpoint, &alignment)) {
    setStatus(tr("Import of %1 cancelled.").arg(QFileInfo(checkpoint).fileName()));
    return;
  }
  setStatus(tr("Importing %1…").arg(QFileInfo(checkpoint).fileName()));
  startImport(checkpoint, model, alignment, tr("chosen when importing"));
  // Once imported, a file the user brought is opened right away.
  auto* once = new QObject(this);
  connect(this, &ModelLibraryDialog::importFinished, once, [this, once](const QString& path) {
    once->deleteLater();
    if (path.isEmpty()) return;
    Q_EMIT modelChosen(path);
    accept();
  });
}

void ModelLibraryDialog::startImport(const QString& checkpoint, const QString& model, const QString& alignment,
                                     const QString& alignment_source) {
  importing_ = true;
  progress_->setVisible(true);
  progress_->setRange(0, 0);  // busy: the import reports no steps (about a second per 100 MB)
  progress_->setFormat(tr("importing…"));
  updateButtons();
  import_watcher_.setFuture(importCheckpointInBackground(checkpoint, model, alignment, alignment_source));
}

}  // namespace automod::ui
