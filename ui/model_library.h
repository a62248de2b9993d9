#pragma once
// Model → Library: the authors' five released models (name, resolution, architecture, alignment,
// size, source) beside the models already imported or trained into the user's data folder. Download
// fetches one (progress, cancel, resume of a partial file, SHA-256 shown), then imports it in the
// background with the entry's alignment; Open (or a double click) hands the model to the editor.
// Offline it says so in one line and offers "Import a file you downloaded", which asks how the photos
// were aligned when the file is not one of the released models (AlignmentDialog).
#include <QDialog>
#include <QFutureWatcher>
#include <QUrl>
#include <QVector>

class QButtonGroup;
class QLabel;
class QProgressBar;
class QPushButton;
class QTableWidget;

namespace automod::ui {

class FileDownload;

/// One row of the library.
struct LibraryEntry {
  QString name;          ///< "ffhq256", or a local model's file name
  int resolution = 0;    ///< 0 when unknown
  QString architecture;  ///< "default" / "small"
  QString alignment;     ///< "ffhq" / "celebahq" / "none"
  QString source;        ///< where it comes from, in words
  QUrl url;              ///< empty for a local model
  QString file;          ///< the download's file name ("34740000_state.pth")
  qint64 bytes = -1;     ///< size when known
  QString path;          ///< a local model's file (imported into the library, or a run's latest.amod)
};

/// Where the library keeps things: <data>/models (imported and trained .amod files) and
/// <data>/downloads (checkpoints, and their .part files while downloading); the Train tab's runs are
/// in <data>/runs (each run's latest.amod is listed too). <data> is the user's application data
/// folder (QStandardPaths::AppDataLocation).
QString libraryModelsFolder();
QString libraryDownloadsFolder();

/// What a background import produced: the model file, or why there is none.
struct ImportOutcome {
  QString model;
  QString error;
  QStringList notCarried;
  QString sha256;
  QString alignment, alignmentReason;  ///< what the model records, and why
};
/// Imports an authors' checkpoint into `model` (an .amod path) on a worker thread: nothing is
/// written unless the import succeeds (a temporary file renamed into place). `alignment` ("ffhq",
/// "celebahq", "none"; empty: a released model's own) and, in words, where it comes from
/// (`alignment_source`, "the library entry ffhq256") go into the model's metadata.
QFuture<ImportOutcome> importCheckpointInBackground(const QString& checkpoint, const QString& model,
                                                   const QString& alignment = {},
                                                   const QString& alignment_source = {});

/// The question for a checkpoint that is not one of the authors' released models: how were the
/// photos it was trained on prepared? Faces aligned as in FFHQ, faces aligned as in CelebA-HQ, or no
/// alignment (scenes such as bedrooms or cars). Nothing is chosen until the user chooses.
class AlignmentDialog : public QDialog {
  Q_OBJECT
 public:
  AlignmentDialog(QWidget* parent, const QString& file_name);
  /// "ffhq", "celebahq" or "none"; empty until one is chosen.
  QString alignment() const;
  /// Selects a choice, as a click on it would.
  void choose(const QString& alignment);

 private:
  QButtonGroup* group_;
  QPushButton* ok_;
};

/// Asks with an AlignmentDialog when `checkpoint` needs an alignment choice (needsAlignmentChoice).
/// Returns false when the user cancels. `alignment` stays empty when no question was needed: a
/// released model brings its own, and a file that cannot be read is left to the import to explain.
bool askAlignmentIfNeeded(QWidget* parent, const QString& checkpoint, QString* alignment);

class ModelLibraryDialog : public QDialog {
  Q_OBJECT
 public:
  /// The released models from `base` (default: the authors' Zenodo record; tests pass a loopback
  /// server's URL), then the local models.
  explicit ModelLibraryDialog(QWidget* parent = nullptr, const QUrl& base = {});
  /// The released models with their download URLs under `base` (empty: the authors' record).
  static QVector<LibraryEntry> releasedEntries(const QUrl& base = {});

  QTableWidget* table() const { return table_; }
  QPushButton* downloadButton() const { return download_; }
  QPushButton* cancelButton() const { return cancel_; }
  QPushButton* openButton() const { return open_; }
  QString statusText() const;
  /// Selects the row of entry `name`; false when there is none.
  bool select(const QString& name);
  /// Download (then import) the selected released model; Open the selected model.
  void downloadSelected();
  void openSelected();
  /// Imports a checkpoint the user already has into the library (then chooses it).
  void importFile(const QString& checkpoint);
  /// The model file of a library entry (whether or not it exists yet).
  static QString modelPathFor(const LibraryEntry& entry);

 Q_SIGNALS:
  /// The user chose a model to open (the editor opens it).
  void modelChosen(const QString& path);
  /// A download finished (ok or not) and, when ok, its SHA-256.
  void downloadFinished(bool ok, const QString& sha256);
  /// An import finished: the model file, or empty with the reason in statusText().
  void importFinished(const QString& model);

 private:
  void refresh();
  void updateButtons();
  const LibraryEntry* selected() const;
  void setStatus(const QString& text);
  void startImport(const QString& checkpoint, const QString& model, const QString& alignment,
                   const QString& alignment_source);

  QVector<LibraryEntry> released_, local_;
  QTableWidget* table_;
  QLabel* status_;
  QProgressBar* progress_;
  QPushButton *download_, *cancel_, *open_, *import_;
  FileDownload* download_job_;
  QFutureWatcher<ImportOutcome> import_watcher_;
  QString downloading_;  ///< the entry being downloaded
  bool importing_ = false;
};

}  // namespace automod::ui
