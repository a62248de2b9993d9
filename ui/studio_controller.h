#pragma once
// The editor's controller: owns the model, the document (core's EditState with undo), the worker
// (core's JobQueue) and one controller per concern, which tests drive without a window:
//   photos()     photo intake: files, pasted images, faces to choose, exemplars, refinement
//   render()     the live result and the sample gallery
//   morph()      morph frames and video export
//   attributes() attribute vectors: build, save, load
//   exporter()   exports: the result, pasted back into the photo, grids
//   project()    project files and recent projects
// A model change rebinds the document to the new model (core's rebind): the sources stay and are
// encoded again in one background batch, the mix, the attribute (rebuilt from its exemplars), the
// morph and the project's name carry over, and the gallery is drawn again. Torch stays in the .cpp.
#include <QObject>
#include <QString>

#include <memory>
#include <optional>

#include "core/metrics/quality_reference.h"
#include "ui/document.h"
#include "ui/inference_worker.h"

namespace automod {
class Automodulator;
class EditState;
struct PhotoOptions;
}  // namespace automod

namespace automod::ui {

class PhotoIntake;
class RenderScheduler;
class MorphController;
class AttributeController;
class ResultExporter;
class ProjectIO;

class StudioController : public QObject {
  Q_OBJECT
 public:
  explicit StudioController(QObject* parent = nullptr);
  ~StudioController() override;

  StudioDocument* document() { return document_; }
  const StudioDocument* document() const { return document_; }
  InferenceWorker* worker() { return worker_; }
  PhotoIntake* photos() { return photos_; }
  RenderScheduler* render() { return render_; }
  const RenderScheduler* render() const { return render_; }
  MorphController* morph() { return morph_; }
  AttributeController* attributes() { return attributes_; }
  ResultExporter* exporter() { return exporter_; }
  ProjectIO* project() { return project_; }

  /// Opens an .amod file (or a training checkpoint). On failure the current model stays.
  bool openModel(const QString& path, QString* error = nullptr);
  /// The bundled model, or core's untrained stand-in when none is installed or its file cannot be
  /// read (untrainedModel(); defaultModelProblem() then says what is wrong with the file). The one way
  /// the editor opens the default model (core/io/default_model). `file`: another default model file
  /// (empty: where core looks for the installed one).
  void openDefaultModel(const QString& file = {});
  /// Why the last openDefaultModel() could not use the default model's file, as a sentence ("" when
  /// it could, or when none is installed).
  QString defaultModelProblem() const { return default_model_problem_; }
  /// Uses `model` (tests: a tiny one); `path` is its file when it has one.
  void setModel(std::shared_ptr<Automodulator> model, const QString& name, const QString& path = {});
  std::shared_ptr<Automodulator> model() const { return model_; }
  bool hasModel() const { return model_ != nullptr; }
  bool untrainedModel() const { return untrained_; }
  QString modelName() const { return model_name_; }
  QString modelPath() const { return model_path_; }
  int modelResolution() const;
  /// How photos are prepared for the current model (its alignment and input transform, and whether
  /// small faces are searched for everywhere).
  PhotoOptions photoOptions() const;
  /// Edit → Search Everywhere for Small Faces: the exhaustive small-face search (core's
  /// DetectOptions::exhaustive_search, the CLI's --search-everywhere) for photos whose small faces the
  /// skin-colour search cannot see (a strong colour cast, very dark skin). Slower; off by default.
  void setSearchEverywhere(bool on) { search_everywhere_ = on; }
  bool searchEverywhere() const { return search_everywhere_; }
  /// The reconstruction PSNR (dB) the model reaches on its own held-out images, when measured.
  std::optional<double> modelReferencePsnr() const { return quality_.held_out_psnr_db; }
  /// A sentence when a photo comes back far below that figure; empty otherwise.
  QString qualityHint(double psnr) const;
  /// Pretty-printed config and metadata.
  QString modelInfo() const;
  QString deviceName() const;

  /// Encodes, in one background batch, every source the current model has no codes for (after a
  /// model change or opening a project made with another model), and rebuilds the attribute from its
  /// exemplars when it needs it. Progress: reencodeProgress, then reencodeFinished.
  void encodeMissingSources();
  /// Replaces the document's state (a project being opened): what was computed or queued for the
  /// previous state is dropped, then its sources without codes are encoded (encodeMissingSources).
  void replaceState(const EditState& state);
  /// True while that batch runs.
  bool reencoding() const { return reencode_total_ > 0; }
  /// Counts the model changes: a job's result that comes back for an older model is dropped.
  quint64 generation() const { return generation_; }

  /// True when nothing is queued or computing (tests).
  bool idle() const;

 Q_SIGNALS:
  void modelChanged();
  /// After a model change, the sources being encoded again: `done` of `total`.
  void reencodeProgress(int done, int total);
  /// They are back (`kept`); `dropped` could not be encoded again (their photo is gone and they had
  /// no picture, or the photo no longer reads); `attributeDropped` says why the attribute could not
  /// be rebuilt (empty when it was, or there was none).
  void reencodeFinished(int kept, int dropped, const QString& attributeDropped = {});
  void busyChanged(bool busy);

 private:
  StudioDocument* document_;
  InferenceWorker* worker_;
  PhotoIntake* photos_;
  RenderScheduler* render_;
  MorphController* morph_;
  AttributeController* attributes_;
  ResultExporter* exporter_;
  ProjectIO* project_;
  std::shared_ptr<Automodulator> model_;
  QString model_name_, model_path_, default_model_problem_;
  bool untrained_ = false;
  bool search_everywhere_ = false;
  QualityReference quality_;
  quint64 generation_ = 0;
  quint64 batch_ = 0, batch_job_ = 0;  // the re-encoding batch running now
  int reencode_total_ = 0;
};

}  // namespace automod::ui
