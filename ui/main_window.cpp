#include "ui/main_window.h"

#include <algorithm>
#include <memory>
#include <utility>

#include <QAction>
#include <QActionGroup>
#include <QApplication>
#include <QClipboard>
#include <QComboBox>
#include <QCloseEvent>
#include <QDir>
#include <QElapsedTimer>
#include <QFontMetrics>
#include <QFutureWatcher>
#include <QJsonDocument>
#include <QFileDialog>
#include <QFileInfo>
#include <QImageReader>
#include <QInputDialog>
#include <QLineEdit>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QProgressBar>
#include <QPushButton>
#include <QPlainTextEdit>
#include <QSettings>
#include <QStatusBar>
#include <QTemporaryDir>
#include <QTimer>
#include <QToolButton>
#include <QUndoStack>
#include <QVBoxLayout>

#include "ui/face_picker.h"
#include "ui/file_dialogs.h"
#include "ui/model_info_dialog.h"
#include "ui/model_library.h"
#include "ui/attribute_tab.h"
#include "ui/mix_tab.h"
#include "core/io/default_model.h"
#include "ui/morph_tab.h"
#include "ui/photo_strip.h"
#include "ui/sample_tab.h"
#include "ui/studio.h"
#include "ui/train_tab.h"

// The resources live in the automod_ui static library: register them before the first window.
static void initStudioResources() { Q_INIT_RESOURCE(studio); }

namespace automod::ui {

namespace {
constexpr int kMaxRecent = 8;
QString photoFilter() {
  return QObject::tr("Photos (*.jpg *.jpeg *.png *.webp *.bmp *.tif *.tiff *.ppm *.pgm);;All files (*)");
}
}  // namespace

MainWindow::MainWindow(StudioController* controller, QWidget* parent)
    : QMainWindow(parent), controller_(controller ? controller : new StudioController(this)) {
  initStudioResources();
  setWindowIcon(QIcon(":/icons/automod-studio.svg"));
  auto* central = new QWidget(this);
  auto* layout = new QVBoxLayout(central);
  strip_ = new PhotoStrip(controller_, central);
  tabs_ = new QTabWidget(central);
  mix_ = new MixTab(controller_, tabs_);
  tabs_->addTab(mix_, tr("&Mix"));
  sample_ = new SampleTab(controller_, tabs_);
  tabs_->addTab(sample_, tr("&Sample"));
  attributes_ = new AttributeTab(controller_, tabs_);
  tabs_->addTab(attributes_, tr("&Attributes"));
  tabs_->setTabToolTip(tabs_->indexOf(attributes_),
                       tr("Build an attribute from exemplar photos and apply it to the result (Alt+A)"));
  morph_ = new MorphTab(controller_, tabs_);
  tabs_->addTab(morph_, tr("M&orph"));
  tabs_->setTabToolTip(tabs_->indexOf(morph_), tr("Morph between two photos, per scale, and export a video (Alt+O)"));
  connect(attributes_, &AttributeTab::message, this, [this](const QString& m) { showMessage(m, 8000); });
  connect(morph_, &MorphTab::message, this, [this](const QString& m) { showMessage(m, 8000); });
  train_ = new TrainTab(tabs_);
  tabs_->addTab(train_, tr("&Train"));
  connect(train_, &TrainTab::openModelRequested, this, [this](const QString& path) {
    if (openModelFile(path)) tabs_->setCurrentWidget(mix_);
  });
  layout->addWidget(strip_);
  layout->addWidget(tabs_, 1);
  setCentralWidget(central);

  device_label_ = new QLabel(this);
  timing_label_ = new QLabel(this);
  device_label_->setToolTip(tr("Where the model runs"));
  timing_label_->setToolTip(tr("Time of the last decode"));
  more_button_ = new QToolButton(this);
  more_button_->setText(QStringLiteral("…"));
  more_button_->setToolTip(tr("Show the whole message"));
  more_button_->setAccessibleName(tr("Show the whole message"));
  more_button_->setAutoRaise(true);
  more_button_->hide();
  connect(more_button_, &QToolButton::clicked, this, &MainWindow::showFullMessage);
  // The message's time is up: its "…" goes with it.
  connect(statusBar(), &QStatusBar::messageChanged, this, [this](const QString& m) {
    if (m.isEmpty()) more_button_->hide();
  });
  statusBar()->addPermanentWidget(more_button_);
  statusBar()->addPermanentWidget(timing_label_);
  statusBar()->addPermanentWidget(device_label_);

  createActions();
  connect(controller_->project(), &ProjectIO::recentProjectsChanged, this, &MainWindow::rebuildRecentProjectsMenu);
  connect(controller_->project(), &ProjectIO::message, this, [this](const QString& m) { showMessage(m, 0); });
  // A project names its model; when that file is gone, the user may point to it (or keep this one).
  controller_->project()->setModelLocator([this](const QString& missing) -> QString {
    if (unsaved_answer_) return {};  // tests answer without dialogs: keep the current model
    const auto answer = QMessageBox::question(
        this, tr("Model Not Found"),
        tr("The project was made with %1, which is not there any more. Locate it? (No: its photos are encoded "
           "by the current model, %2.)")
            .arg(QDir::toNativeSeparators(missing), controller_->modelName()),
        QMessageBox::Yes | QMessageBox::No, QMessageBox::Yes);
    if (answer != QMessageBox::Yes) return {};
    return QFileDialog::getOpenFileName(this, tr("Locate %1").arg(QFileInfo(missing).fileName()),
                                        startDirectory("models"), tr("Models (*.amod);;All files (*)"));
  });

  connect(strip_, &PhotoStrip::filesDropped, this, [this](const QStringList& f) { controller_->photos()->addPhotos(f); });
  connect(strip_, &PhotoStrip::imageDropped, this, [this](const QImage& image) { controller_->photos()->addImage(image); });
  connect(controller_->photos(), &PhotoIntake::photoFailed, this, [this](const QString& path, const QString& why) {
    showMessage(tr("Cannot load %1: %2").arg(QFileInfo(path).fileName(), why));
    failed_photos_ << tr("%1: %2").arg(QFileInfo(path).fileName(), why);
  });
  connect(controller_->photos(), &PhotoIntake::photoAdded, this, [this](int i) {
    const auto& s = controller_->document()->sources().at(i);
    // A note (no face found: center-cropped; a small face; which face) stays until the next message.
    showMessage(s.note.isEmpty() ? tr("Added %1").arg(s.name) : tr("Added %1: %2").arg(s.name, s.note),
                s.note.isEmpty() ? 5000 : 0);
  });
  connect(controller_->photos(), &PhotoIntake::facesFound, this, [this](const QString& path) {
    face_queue_.removeAll(path);
    face_queue_ << path;
    showNextFacePicker();
  });
  connect(controller_->render(), &RenderScheduler::decodeFailed, this,
          [this](const QString& why) { showMessage(tr("Cannot decode the mix: %1").arg(why)); });
  connect(controller_->render(), &RenderScheduler::resultReady, this, [this] {
    timing_label_->setText(tr("decode %1 ms").arg(controller_->render()->lastDecodeMs(), 0, 'f', 0));
    updateActions();
  });
  // Several photos that failed in one batch: every one of them in one list, not only the last.
  connect(controller_->photos(), &PhotoIntake::busyChanged, this, [this](bool busy) {
    if (busy || failed_photos_.isEmpty()) return;
    const QStringList failed = std::exchange(failed_photos_, {});
    last_failure_list_ = failed;
    if (failed.size() == 1) return;  // its message is in the status bar
    showMessage(tr("%1 photos could not be used (the list is in the dialog)").arg(failed.size()));
    auto* box = new QMessageBox(QMessageBox::Warning, tr("Photos Not Added"),  // not modal: the work goes on
                                tr("%1 photos could not be used:").arg(failed.size()), QMessageBox::Close, this);
    box->setInformativeText(failed.mid(0, 8).join('\n') + (failed.size() > 8 ? tr("\n… and %1 more").arg(failed.size() - 8) : QString()));
    box->setDetailedText(failed.join('\n'));
    box->setAttribute(Qt::WA_DeleteOnClose);
    box->setObjectName("failedPhotos");
    box->open();
  });
  connect(controller_->photos(), &PhotoIntake::busyChanged, this,
          [this](bool busy) { if (busy) showMessage(tr("Encoding photos…"), 3000); });
  connect(controller_, &StudioController::modelChanged, this, [this] {
    device_label_->setText(controller_->deviceName());
    if (controller_->untrainedModel() && !controller_->defaultModelProblem().isEmpty())
      showMessage(tr("%1 (using a freshly initialised 64 px model instead, whose results are noise: open or "
                     "import another model, or install the default one again)")
                      .arg(controller_->defaultModelProblem()));
    else if (controller_->untrainedModel())
      showMessage(tr("No trained default model is installed: using a freshly initialised 64 px model "
                     "(results are noise until you train one)."));
    else
      showMessage(tr("Model %1 (%2 px)").arg(controller_->modelName()).arg(controller_->modelResolution()), 5000);
    updateTitle();
  });
  connect(controller_->document()->undoStack(), &QUndoStack::cleanChanged, this, &MainWindow::updateTitle);
  connect(controller_->document()->undoStack(), &QUndoStack::indexChanged, this, &MainWindow::updateTitle);
  connect(controller_, &StudioController::reencodeProgress, this, [this](int done, int total) {
    showMessage(tr("Encoding the photos again with the new model: %1 of %2").arg(done).arg(total));
  });
  connect(controller_, &StudioController::reencodeFinished, this,
          [this](int kept, int dropped, const QString& attributeDropped) {
            if (kept + dropped == 0 && attributeDropped.isEmpty()) return updateTitle();
            QString text = dropped == 0
                               ? tr("%n photo(s) encoded by the model; the undo history starts here", "", kept)
                               : tr("%1 photo(s) encoded by the model; %2 could not be (their photo is gone or no "
                                    "longer reads) and left the strip; the undo history starts here")
                                     .arg(kept)
                                     .arg(dropped);
            if (!attributeDropped.isEmpty()) text += "; " + attributeDropped;
            showMessage(text, dropped == 0 && attributeDropped.isEmpty() ? 8000 : 0);
            updateTitle();
          });
  connect(controller_->document(), &StudioDocument::sourcesChanged, this, &MainWindow::updateActions);
  connect(controller_->document(), &StudioDocument::mixChanged, this, &MainWindow::updateActions);
  connect(controller_->render(), &RenderScheduler::samplesReady, this, &MainWindow::updateActions);

  QSettings settings;
  restoreGeometry(settings.value("window/geometry").toByteArray());
  restoreState(settings.value("window/state").toByteArray());
  if (settings.contains("window/tab")) tabs_->setCurrentIndex(settings.value("window/tab").toInt());
  if (!restoreGeometry(settings.value("window/geometry").toByteArray())) resize(1100, 760);
  export_side_ = std::max(0, settings.value("export/side", 0).toInt());

  if (!controller) controller_->openDefaultModel();
  device_label_->setText(controller_->deviceName());
  updateActions();
  updateTitle();
}

MainWindow::~MainWindow() = default;

void MainWindow::createActions() {
  auto* file = menuBar()->addMenu(tr("&File"));
  file->addAction(tr("&New Project"), this, &MainWindow::newProject)->setShortcut(QKeySequence::New);
  auto* open = file->addAction(tr("&Open Photos…"), this, &MainWindow::openPhotosDialog);
  open->setShortcut(QKeySequence::Open);
  open->setToolTip(tr("Add photos to the strip"));
  auto* paste_action = file->addAction(tr("&Paste Photo"), this, &MainWindow::paste);
  paste_action->setShortcut(QKeySequence::Paste);
  file->addSeparator();
  auto* open_project = file->addAction(tr("Open &Project…"), this, [this] {
    const auto path =
        QFileDialog::getOpenFileName(this, tr("Open Project"), startDirectory("projects"), tr("Projects (*.json)"));
    if (path.isEmpty()) return;
    rememberDirectory("projects", path);
    openProject(path);
  });
  open_project->setShortcut(QKeySequence(tr("Ctrl+Shift+O")));
  recent_projects_menu_ = file->addMenu(tr("Recent P&rojects"));
  connect(recent_projects_menu_, &QMenu::aboutToShow, this, &MainWindow::rebuildRecentProjectsMenu);
  rebuildRecentProjectsMenu();
  save_action_ = file->addAction(tr("&Save Project"), this, [this] {
    if (controller_->document()->filePath().isEmpty())
      saveProjectAs();
    else
      saveProject(controller_->document()->filePath());
  });
  save_action_->setShortcut(QKeySequence::Save);
  auto* save_as = file->addAction(tr("Save Project &As…"), this, &MainWindow::saveProjectAs);
  save_as->setShortcut(QKeySequence::SaveAs);
  file->addSeparator();
  export_action_ = file->addAction(tr("&Export Result…"), this, &MainWindow::exportResult);
  export_action_->setShortcut(QKeySequence(tr("Ctrl+E")));
  export_pasted_action_ =
      file->addAction(tr("Export Pasted into Original &Photo…"), this, &MainWindow::exportPastedBack);
  export_pasted_action_->setShortcut(QKeySequence(tr("Ctrl+Shift+E")));
  export_grid_action_ = file->addAction(tr("Export &Grid…"), this, &MainWindow::exportGrid);
  export_grid_action_->setToolTip(tr("The photos, their reconstructions and the result (or the sample gallery) as one PNG"));
  file->setToolTipsVisible(true);
  export_size_menu_ = file->addMenu(tr("Export &Size"));
  export_size_menu_->setToolTip(tr("The size File → Export Result writes: the model's resolution, or upscaled"));
  connect(export_size_menu_, &QMenu::aboutToShow, this, &MainWindow::rebuildExportSizeMenu);
  copy_action_ = file->addAction(tr("&Copy Result"), this, &MainWindow::copyResult);
  copy_action_->setShortcut(QKeySequence(tr("Ctrl+Shift+C")));
  file->addSeparator();
  auto* quit = file->addAction(tr("&Quit"), this, &QWidget::close);
  quit->setShortcut(QKeySequence::Quit);

  auto* edit = menuBar()->addMenu(tr("&Edit"));
  auto* undo = controller_->document()->undoStack()->createUndoAction(this, tr("&Undo"));
  undo->setShortcut(QKeySequence::Undo);
  auto* redo = controller_->document()->undoStack()->createRedoAction(this, tr("&Redo"));
  redo->setShortcut(QKeySequence::Redo);
  edit->addAction(undo);
  edit->addAction(redo);
  edit->addSeparator();
  // How photos come in: already aligned files skip face detection; new photos can be refined at once.
  QSettings settings;
  auto* aligned = edit->addAction(tr("Photos Are Already &Aligned"));
  aligned->setCheckable(true);
  aligned->setToolTip(tr("Photos are aligned as the model expects (FFHQ or CelebA-HQ files, automod align output): "
                         "no face detection, only the model's input transform"));
  aligned->setChecked(settings.value("photos/aligned", false).toBool());
  controller_->photos()->setPhotosAligned(aligned->isChecked());
  connect(aligned, &QAction::toggled, this, [this](bool on) {
    controller_->photos()->setPhotosAligned(on);
    QSettings().setValue("photos/aligned", on);
  });
  auto* everywhere = edit->addAction(tr("&Search Everywhere for Small Faces"));
  everywhere->setCheckable(true);
  everywhere->setObjectName("searchEverywhere");
  everywhere->setToolTip(tr("When a photo's faces are too small for the first look, search the whole photo instead of "
                            "its skin-coloured parts: finds small faces under a strong colour cast or in very dark "
                            "light, and takes several times longer"));
  everywhere->setChecked(settings.value("photos/searchEverywhere", false).toBool());
  controller_->setSearchEverywhere(everywhere->isChecked());
  connect(everywhere, &QAction::toggled, this, [this](bool on) {
    controller_->setSearchEverywhere(on);
    QSettings().setValue("photos/searchEverywhere", on);
  });
  auto* refine_menu = edit->addMenu(tr("&Refine New Photos"));
  refine_menu->setToolTip(tr("Refine each new photo's codes beyond one encoder pass (in the background; R on a tile "
                             "refines one photo)"));
  auto* refine_group = new QActionGroup(refine_menu);
  const int refine_steps = std::max(0, settings.value("photos/refineSteps", 0).toInt());
  controller_->photos()->setRefineNewPhotos(refine_steps);
  for (int steps : {0, 50, 100, 200}) {
    auto* a = refine_menu->addAction(steps == 0 ? tr("Off") : tr("%1 Steps").arg(steps));
    a->setCheckable(true);
    a->setChecked(steps == refine_steps);
    refine_group->addAction(a);
    connect(a, &QAction::triggered, this, [this, steps] {
      controller_->photos()->setRefineNewPhotos(steps);
      QSettings().setValue("photos/refineSteps", steps);
    });
  }
  edit->setToolTipsVisible(true);

  auto* model = menuBar()->addMenu(tr("&Model"));
  auto* open_model = model->addAction(tr("&Open Model…"), this, &MainWindow::openModelDialog);
  open_model->setShortcut(QKeySequence(tr("Ctrl+M")));
  recent_menu_ = model->addMenu(tr("&Recent Models"));
  model->addAction(tr("&Default Model"), this, &MainWindow::openDefaultModel);
  model->addSeparator();
  model->addAction(tr("&Library…"), this, [this] { openModelLibrary(); })
      ->setToolTip(tr("The authors' released models (download, import) and the models you imported or trained"));
  model->addAction(tr("Import &Checkpoint…"), this, [this] {
    const auto path = QFileDialog::getOpenFileName(this, tr("Import Checkpoint"), startDirectory("checkpoints"),
                                                   tr("Checkpoints of the authors' code (*.pth *.pt);;All files (*)"));
    if (path.isEmpty()) return;
    rememberDirectory("checkpoints", path);
    importCheckpoint(path);
  });
  model->setToolTipsVisible(true);
  model->addSeparator();
  model->addAction(tr("Model &Info…"), this, &MainWindow::showModelInfo)->setShortcut(QKeySequence(tr("Ctrl+I")));
  rebuildRecentMenu();

  auto* help = menuBar()->addMenu(tr("&Help"));
  help->addAction(tr("&About Automodulator Studio"), this, &MainWindow::showAbout);
  help->addAction(tr("About &Qt"), qApp, &QApplication::aboutQt);
}

void MainWindow::updateActions() {
  const bool has_result = !controller_->render()->result().isNull();
  export_action_->setEnabled(has_result);
  copy_action_->setEnabled(has_result);
  const int origin = controller_->exporter()->pasteBackSource();
  export_pasted_action_->setEnabled(has_result && origin >= 0);
  if (!has_result)
    export_pasted_action_->setToolTip(tr("There is no result yet"));
  else if (origin < 0)
    export_pasted_action_->setToolTip(
        tr("The result has no originating photo (its sources are kept samples or pasted images)"));
  else
    export_pasted_action_->setToolTip(tr("The result warped back into %1 with a feathered edge")
                                          .arg(QFileInfo(controller_->exporter()->sourceOrigin(origin)->path).fileName()));
  export_grid_action_->setEnabled(has_result || !controller_->render()->samples().isEmpty());
  save_action_->setEnabled(!controller_->document()->sources().isEmpty());
}

void MainWindow::updateTitle() {
  const auto path = controller_->document()->filePath();
  setWindowTitle((path.isEmpty() ? tr("Untitled") : QFileInfo(path).fileName()) + "[*] — " + controller_->modelName());
  setWindowModified(controller_->document()->isModified());
}

void MainWindow::showMessage(const QString& text, int timeout_ms) {
  // Nothing stays in the status bar for good: errors and notes (no timeout asked) for 30 s, the full
  // text of a long one behind the "…" button until the next message.
  if (timeout_ms <= 0) timeout_ms = kLongMessageMs;
  last_message_ = text;
  message_timeout_ms_ = timeout_ms;
  message_clock_.start();
  showElidedMessage(timeout_ms);
}

void MainWindow::showElidedMessage(int timeout_ms) {
  // Elided to the space left of the permanent labels (decode time, device); the whole text is the
  // status bar's tooltip.
  const int room = statusBar()->width() - timing_label_->sizeHint().width() - device_label_->sizeHint().width() - 48;
  const int button = more_button_->sizeHint().width();
  const QString shown =
      statusBar()->fontMetrics().elidedText(last_message_, Qt::ElideRight, std::max(room - button, 120));
  statusBar()->setToolTip(shown == last_message_ ? QString() : last_message_);
  more_button_->setVisible(shown != last_message_);
  statusBar()->showMessage(shown, timeout_ms);
}

void MainWindow::showFullMessage() {
  if (last_message_.isEmpty()) return;
  auto* box = new QMessageBox(QMessageBox::Information, tr("Message"), last_message_, QMessageBox::Close, this);
  box->setObjectName("fullMessage");
  box->setAttribute(Qt::WA_DeleteOnClose);
  box->setTextInteractionFlags(Qt::TextSelectableByMouse);
  box->open();
}

void MainWindow::resizeEvent(QResizeEvent* event) {
  QMainWindow::resizeEvent(event);
  // The message on show is elided again for the new width, for what is left of its time.
  if (statusBar()->currentMessage().isEmpty() || last_message_.isEmpty()) return;
  const int left = message_timeout_ms_ - int(message_clock_.elapsed());
  if (left > 0) showElidedMessage(left);
}

void MainWindow::openPhotosDialog() {
  const auto files = QFileDialog::getOpenFileNames(this, tr("Open Photos"), startDirectory("photos"), photoFilter());
  if (files.isEmpty()) return;
  rememberDirectory("photos", files.front());
  controller_->photos()->addPhotos(files);
}

void MainWindow::paste() {
  const auto* mime = QApplication::clipboard()->mimeData();
  if (!mime) return;
  if (auto files = localFiles(mime); !files.isEmpty())
    controller_->photos()->addPhotos(files);
  else if (mime->hasImage())
    controller_->photos()->addImage(qvariant_cast<QImage>(mime->imageData()));
  else
    showMessage(tr("The clipboard holds no image"), 4000);
}

void MainWindow::openModelDialog() {
  const auto path =
      QFileDialog::getOpenFileName(this, tr("Open Model"), startDirectory("models"), tr("Models (*.amod);;All files (*)"));
  if (path.isEmpty()) return;
  rememberDirectory("models", path);
  openModelFile(path);
}

namespace {
QString modelChangeConsequence() {
  return QObject::tr("Changing the model keeps your photos and encodes them again with the new model, but the undo "
                     "history cannot come along (its codes belong to the current model).");
}
}  // namespace

void MainWindow::openDefaultModel() {
  if (!maybeSave(modelChangeConsequence())) return;
  controller_->openDefaultModel();
}

bool MainWindow::openModelFile(const QString& path) {
  if (!maybeSave(modelChangeConsequence())) return false;
  QString error;
  if (!controller_->openModel(path, &error)) {
    showMessage(tr("Cannot load %1: %2").arg(QFileInfo(path).fileName(), error));
    if (!unsaved_answer_) QMessageBox::warning(this, tr("Open Model"), tr("Cannot load %1: %2").arg(path, error));
    return false;
  }
  QSettings settings;
  auto recent = settings.value("recentModels").toStringList();
  recent.removeAll(path);
  recent.prepend(path);
  while (recent.size() > kMaxRecent) recent.removeLast();
  settings.setValue("recentModels", recent);
  rebuildRecentMenu();
  return true;
}

void MainWindow::rebuildRecentProjectsMenu() {
  recent_projects_menu_->clear();
  const auto recent = controller_->project()->recentProjects();
  for (const auto& path : recent)
    recent_projects_menu_->addAction(QFileInfo(path).fileName(), this, [this, path] { openProject(path); })
        ->setToolTip(path);
  if (!recent.isEmpty()) {
    recent_projects_menu_->addSeparator();
    recent_projects_menu_->addAction(tr("&Clear List"), controller_->project(), &ProjectIO::clearRecentProjects);
  }
  recent_projects_menu_->setEnabled(!recent.isEmpty());
}

void MainWindow::rebuildRecentMenu() {
  recent_menu_->clear();
  const auto recent = QSettings().value("recentModels").toStringList();
  for (const auto& path : recent)
    recent_menu_->addAction(QFileInfo(path).fileName(), this, [this, path] { openModelFile(path); })->setToolTip(path);
  recent_menu_->setEnabled(!recent.isEmpty());
}

void MainWindow::openStartupFiles(const QString& model, const QStringList& files) {
  if (!model.isEmpty()) openModelFile(model);
  QStringList photos;
  for (const auto& f : files) {
    if (f.endsWith(".json", Qt::CaseInsensitive))
      openProject(f);
    else
      photos << f;
  }
  if (!photos.isEmpty()) controller_->photos()->addPhotos(photos);
}

ModelLibraryDialog* MainWindow::openModelLibrary(const QUrl& base) {
  auto* dialog = new ModelLibraryDialog(this, base);
  dialog->setObjectName("modelLibrary");
  dialog->setAttribute(Qt::WA_DeleteOnClose);
  connect(dialog, &ModelLibraryDialog::modelChosen, this, [this](const QString& path) { openModelFile(path); });
  dialog->open();
  return dialog;
}

void MainWindow::importCheckpoint(const QString& path) {
  if (import_running_) {
    showMessage(tr("An import is already running"), 4000);
    return;
  }
  // A second checkpoint with the same file name (two runs' "latest.pth", say) gets a name of its own
  // instead of replacing the first one in the library.
  const QDir library(libraryModelsFolder());
  const QString base = QFileInfo(path).completeBaseName();
  QString model = library.filePath(base + ".amod");
  for (int n = 2; QFileInfo::exists(model); ++n) model = library.filePath(QStringLiteral("%1 (%2).amod").arg(base).arg(n));
  QString alignment;  // asked for a file that is not one of the released models
  if (!askAlignmentIfNeeded(this, path, &alignment)) {
    showMessage(tr("Import of %1 cancelled").arg(QFileInfo(path).fileName()), 4000);
    return;
  }
  import_running_ = true;
  showMessage(tr("Importing %1…").arg(QFileInfo(path).fileName()));
  if (!import_progress_) {
    import_progress_ = new QProgressBar(this);
    import_progress_->setRange(0, 0);  // busy: the import reports no steps (about a second per 100 MB)
    import_progress_->setMaximumWidth(160);
    import_progress_->setAccessibleName(tr("Import in progress"));
    statusBar()->addPermanentWidget(import_progress_);
  }
  import_progress_->show();
  auto* watcher = new QFutureWatcher<ImportOutcome>(this);
  connect(watcher, &QFutureWatcher<ImportOutcome>::finished, this, [this, watcher, path] {
    watcher->deleteLater();
    import_running_ = false;
    import_progress_->hide();
    const ImportOutcome r = watcher->result();
    if (!r.error.isEmpty()) {
      showMessage(tr("Cannot import %1: %2").arg(QFileInfo(path).fileName(), r.error));
      return;
    }
    if (openModelFile(r.model))
      showMessage(tr("Imported %1 into %2%3")
                      .arg(QFileInfo(path).fileName(), QDir::toNativeSeparators(r.model),
                           r.notCarried.isEmpty() ? QString() : tr(" (not carried over: %1)").arg(r.notCarried.join("; "))),
                  10000);
  });
  watcher->setFuture(importCheckpointInBackground(path, model, alignment, tr("chosen when importing")));
}

bool MainWindow::maybeSave(const QString& consequence) {
  auto* doc = controller_->document();
  if (!doc->isModified() || doc->sources().isEmpty()) return true;
  const QString name = doc->filePath().isEmpty() ? tr("the untitled project") : QFileInfo(doc->filePath()).fileName();
  const QString question = tr("Save the changes to %1 first?").arg(name);
  QMessageBox::StandardButton answer;
  if (unsaved_answer_) {
    answer = unsaved_answer_(question + '\n' + consequence);
  } else {
    QMessageBox box(QMessageBox::Warning, tr("Unsaved Changes"), question,
                    QMessageBox::Save | QMessageBox::Discard | QMessageBox::Cancel, this);
    box.setInformativeText(consequence);
    box.setDefaultButton(QMessageBox::Save);
    answer = QMessageBox::StandardButton(box.exec());
  }
  if (answer == QMessageBox::Cancel) return false;
  if (answer == QMessageBox::Discard) return true;
  // Save: into the project's file, or one the user names; a failed or cancelled save keeps the work.
  return doc->filePath().isEmpty() ? saveProjectAs() : saveProject(doc->filePath());
}

void MainWindow::setUnsavedChangesAnswer(std::function<QMessageBox::StandardButton(const QString&)> answer,
                                         std::function<QString()> saveAsPath) {
  unsaved_answer_ = std::move(answer);
  save_as_path_ = std::move(saveAsPath);
}

bool MainWindow::newProject() {
  if (!maybeSave(tr("A new project starts with an empty strip and mix."))) return false;
  controller_->document()->clear();
  showMessage(tr("New project"), 3000);
  updateTitle();
  return true;
}

void MainWindow::setExportSide(int side) {
  export_side_ = std::max(0, side);
  QSettings().setValue("export/side", export_side_);
}

void MainWindow::rebuildExportSizeMenu() {
  export_size_menu_->clear();
  const auto sides = controller_->exporter()->exportSides();
  const int native = sides.isEmpty() ? 0 : sides.front();
  for (int side : sides) {
    const int value = side == native ? 0 : side;
    auto* a = export_size_menu_->addAction(
        side == native ? tr("%1 × %1 px (the model's resolution)").arg(side) : tr("%1 × %1 px (upscaled)").arg(side),
        this, [this, value] { setExportSide(value); });
    a->setCheckable(true);
    a->setChecked(value == export_side_ || (value == 0 && export_side_ <= native));
  }
}

bool MainWindow::openProject(const QString& path) {
  if (!maybeSave(tr("Opening %1 replaces the photos, the mix and the undo history.").arg(QFileInfo(path).fileName())))
    return false;
  QString error;
  if (!controller_->project()->open(path, &error)) {
    showMessage(tr("Cannot load %1: %2").arg(QFileInfo(path).fileName(), error));
    return false;
  }
  showMessage(tr("Opened %1").arg(QFileInfo(path).fileName()), 5000);
  updateTitle();
  return true;
}

bool MainWindow::saveProject(const QString& path) {
  QString error;
  if (!controller_->project()->save(path, &error)) {
    showMessage(tr("Cannot save %1: %2").arg(QFileInfo(path).fileName(), error));
    return false;
  }
  controller_->document()->setSaved();
  showMessage(tr("Saved %1").arg(QFileInfo(path).fileName()), 5000);
  updateTitle();
  return true;
}

bool MainWindow::saveProjectAs() {
  auto path = save_as_path_ ? save_as_path_()
                            : QFileDialog::getSaveFileName(this, tr("Save Project"), startPath("projects", "project.json"),
                                                           tr("Projects (*.json)"));
  if (path.isEmpty()) return false;
  if (!path.endsWith(".json", Qt::CaseInsensitive)) path += ".json";
  rememberDirectory("projects", path);
  return saveProject(path);
}

void MainWindow::exportResult() {
  QString filter;
  auto path = QFileDialog::getSaveFileName(this, tr("Export Result"), startPath("export", "mix.png"),
                                           imageSaveFilters(), &filter);
  if (path.isEmpty()) return;
  path = withFilterExtension(path, filter);
  rememberDirectory("export", path);
  QString error;
  if (controller_->exporter()->exportResult(path, export_side_, &error))
    showMessage(tr("Exported %1 (%2 × %2 px)")
                    .arg(QFileInfo(path).fileName())
                    .arg(export_side_ > 0 ? export_side_ : controller_->render()->result().width()),
                5000);
  else
    showMessage(tr("Cannot save %1: %2").arg(QFileInfo(path).fileName(), error));
}

void MainWindow::exportPastedBack() {
  // Which photo: the coarse range's source by default; the user may pick another with a photo.
  const auto& sources = controller_->document()->sources();
  QStringList names;
  QVector<int> indices;
  for (int i = 0; i < sources.size(); ++i)
    if (controller_->exporter()->sourceOrigin(i)) {
      names << sources[i].name;
      indices << i;
    }
  int source = controller_->exporter()->pasteBackSource();
  if (source < 0) {
    showMessage(tr("Cannot paste back: the result has no originating photo"));
    return;
  }
  if (indices.size() > 1) {
    bool ok = false;
    const QString choice = QInputDialog::getItem(this, tr("Export Pasted into Original Photo"),
                                                 tr("Paste the result into the photo of:"), names,
                                                 int(indices.indexOf(source)), false, &ok);
    if (!ok) return;
    source = indices.value(int(names.indexOf(choice)), source);
  }
  const QFileInfo photo(controller_->exporter()->sourceOrigin(source)->path);
  QString filter;
  auto path = QFileDialog::getSaveFileName(this, tr("Export Pasted into Original Photo"),
                                           startPath("export", photo.completeBaseName() + "-edited.png"),
                                           imageSaveFilters(), &filter);
  if (path.isEmpty()) return;
  path = withFilterExtension(path, filter);
  rememberDirectory("export", path);
  QString error;
  if (controller_->exporter()->exportPastedBack(path, source, &error))
    showMessage(tr("Exported %1").arg(QFileInfo(path).fileName()), 5000);
  else
    showMessage(tr("Cannot save %1: %2").arg(QFileInfo(path).fileName(), error));
}

void MainWindow::exportGrid() {
  const bool has_mix = !controller_->render()->result().isNull();
  const bool has_samples = !controller_->render()->samples().isEmpty();
  bool samples = has_samples && !has_mix;
  if (has_mix && has_samples) {
    const QStringList kinds{tr("Mix: photos, reconstructions and result"), tr("Sample gallery")};
    bool ok = false;
    const QString kind = QInputDialog::getItem(this, tr("Export Grid"), tr("Export as a grid:"), kinds,
                                               tabs_->currentWidget() == sample_ ? 1 : 0, false, &ok);
    if (!ok) return;
    samples = kind == kinds[1];
  }
  const QImage grid = samples ? controller_->exporter()->sampleGrid() : controller_->exporter()->mixGrid();
  if (grid.isNull()) {
    showMessage(tr("Nothing to export yet"), 4000);
    return;
  }
  QString filter;
  auto path = QFileDialog::getSaveFileName(this, tr("Export Grid"),
                                           startPath("export", samples ? "samples.png" : "mix-grid.png"),
                                           imageSaveFilters(), &filter);
  if (path.isEmpty()) return;
  path = withFilterExtension(path, filter);
  rememberDirectory("export", path);
  if (grid.save(path))
    showMessage(tr("Exported %1").arg(QFileInfo(path).fileName()), 5000);
  else
    showMessage(tr("Cannot save %1").arg(QFileInfo(path).fileName()));
}

void MainWindow::showNextFacePicker() {
  if (face_picker_ || face_queue_.isEmpty()) return;
  const QString path = face_queue_.takeFirst();
  const FaceCandidates c = controller_->photos()->faceCandidates(path);
  if (c.boxes.isEmpty()) return showNextFacePicker();
  face_picker_ = new FacePicker(QFileInfo(path).fileName(), c.photo, c.photoSize, c.boxes, c.crops, this);
  face_picker_->setAttribute(Qt::WA_DeleteOnClose);
  connect(face_picker_, &QDialog::finished, this, [this, path](int code) {
    const QVector<int> faces = code == QDialog::Accepted ? face_picker_->selectedFaces() : QVector<int>{};
    face_picker_ = nullptr;
    if (faces.isEmpty()) showMessage(tr("Skipped %1").arg(QFileInfo(path).fileName()), 5000);
    controller_->photos()->chooseFaces(path, faces);
    QTimer::singleShot(0, this, &MainWindow::showNextFacePicker);
  });
  face_picker_->open();
}

void MainWindow::copyResult() {
  const QImage image = controller_->render()->result();
  if (image.isNull()) {
    showMessage(tr("There is no result to copy yet"), 4000);
    return;
  }
  QApplication::clipboard()->setImage(image);
  showMessage(tr("Copied the result (%1 × %2 px) to the clipboard").arg(image.width()).arg(image.height()), 4000);
}

void MainWindow::showModelInfo() {
  const auto info = QJsonDocument::fromJson(controller_->modelInfo().toUtf8()).object();
  auto* dialog = new ModelInfoDialog(controller_->modelName(), controller_->deviceName(), info, this);
  dialog->setObjectName("modelInfoDialog");
  dialog->setAttribute(Qt::WA_DeleteOnClose);
  dialog->open();
}

void MainWindow::showAbout() {
  QMessageBox::about(this, tr("About Automodulator Studio"),
                     tr("<h3>Automodulator Studio %1</h3>"
                        "<p>Mix, sample and edit faces with a deep automodulator "
                        "(Heljakka, Hou, Kannala, Solin; NeurIPS 2020).</p>"
                        "<p>C++20, Qt 6 and LibTorch.</p>")
                         .arg(QApplication::applicationVersion()));
}

void MainWindow::takeScreenshots(const QString& dir) {
  QDir().mkpath(dir);
  auto* poll = new QTimer(this);
  auto* clock = new QElapsedTimer;
  clock->start();
  // Once the photos are in and the mix is decoded, the Sample tab draws its gallery (seed 0) so that
  // its screenshot shows samples, not an empty pane.
  auto samples_asked = std::make_shared<bool>(false), samples_done = std::make_shared<bool>(false);
  connect(controller_->render(), &RenderScheduler::samplesReady, poll, [samples_done] { *samples_done = true; });
  connect(poll, &QTimer::timeout, this, [this, poll, clock, dir, samples_asked, samples_done] {
    const bool have_sources = !controller_->document()->sources().isEmpty();
    const bool ready = !controller_->worker()->isBusy() && controller_->photos()->pendingPhotos() == 0 &&
                       !controller_->morph()->pending() && (!have_sources || !controller_->render()->result().isNull());
    if (!ready && clock->elapsed() < 120000) return;
    if (ready && have_sources && !*samples_asked) {
      *samples_asked = true;
      sample_->generate();
      return;
    }
    if (*samples_asked && !*samples_done && clock->elapsed() < 120000) return;
    poll->stop();
    poll->deleteLater();
    delete clock;
    bool ok = true;
    for (int i = 0; i < tabs_->count(); ++i) {
      if (tabs_->widget(i) == train_) continue;
      tabs_->setCurrentIndex(i);
      QCoreApplication::processEvents();
      ok = grab().save(QDir(dir).filePath(tabs_->tabText(i).remove('&').toLower() + ".png")) && ok;
    }
    // The model library (Model → Library), over the window as a user sees it.
    auto* library = openModelLibrary();
    QCoreApplication::processEvents();
    ok = library->grab().save(QDir(dir).filePath("library.png")) && ok;
    library->close();
    grabTrainingTab(dir, ok);
  });
  poll->start(200);
}

void MainWindow::grabTrainingTab(const QString& dir, bool ok) {
  tabs_->setCurrentWidget(train_);
  const QString path = QDir(dir).filePath(tabs_->tabText(tabs_->currentIndex()).remove('&').toLower() + ".png");
  auto result = std::make_shared<bool>(ok), grabbed = std::make_shared<bool>(false);
  auto* run = train_->controller();
  // Grabs the tab once (stopping the run), and reports.
  auto shoot = [this, path, result, grabbed, run] {
    if (*grabbed) return;
    *grabbed = true;
    QCoreApplication::processEvents();
    *result = grab().save(path) && *result;
    if (run->isActive()) run->stop();
  };
  auto finish = [this, shoot, result] {
    shoot();
    tabs_->setCurrentIndex(0);
    Q_EMIT screenshotsTaken(*result);
  };
  // The held-out faces beside the bundled model (resources/eval-faces in the source tree): a short
  // run of the tiny preset on them shows progress, the loss chart and previews instead of an idle form.
  const QString model = QString::fromStdString(defaultModelPath().string());
  const QString faces = model.isEmpty() ? QString() : QFileInfo(model).dir().filePath("../resources/eval-faces");
  if (faces.isEmpty() || !QFileInfo(faces).isDir() || run->isActive()) return finish();
  auto out = std::make_shared<QTemporaryDir>();
  train_->presetCombo()->setCurrentIndex(train_->presetCombo()->findText("tiny"));
  train_->dataCombo()->setCurrentIndex(train_->dataCombo()->findData(TrainRequest::Folder));
  train_->folderEdit()->setText(QDir::cleanPath(faces));
  train_->outputEdit()->setText(out->path());
  // Grab once the second preview is in (the run is two thirds through), or when it ends early.
  auto previews = std::make_shared<int>(0);
  connect(run, &TrainController::preview, this, [previews, shoot] {
    if (++*previews == 2) QTimer::singleShot(500, shoot);
  });
  connect(run, &TrainController::finished, this, [out, finish] { finish(); });
  QTimer::singleShot(120000, this, shoot);
  train_->startButton()->click();
  if (!run->isActive()) finish();  // could not start (the reason is in the tab's log): grab what it shows
}

void MainWindow::closeEvent(QCloseEvent* event) {
  if (!maybeSave(tr("Quitting without saving loses the photos, the mix and the undo history."))) {
    event->ignore();
    return;
  }
  if (train_->controller()->isActive()) {
    const auto answer = QMessageBox::question(
        this, tr("Training Is Running"),
        tr("A training run is in progress. Save a checkpoint, stop it and quit?"),
        QMessageBox::Yes | QMessageBox::Cancel, QMessageBox::Cancel);
    if (answer != QMessageBox::Yes) {
      event->ignore();
      return;
    }
    showMessage(tr("Saving a checkpoint and stopping the training…"));
    train_->controller()->stopAndWait();
  }
  QSettings settings;
  settings.setValue("window/geometry", saveGeometry());
  settings.setValue("window/state", saveState());
  settings.setValue("window/tab", tabs_->currentIndex());
  event->accept();
}

}  // namespace automod::ui
