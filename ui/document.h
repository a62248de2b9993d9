#pragma once
// The document model: the loaded sources and the current mix, with one QUndoStack. Every user
// action is one QUndoCommand (a slider drag merges into one step). A project file is a recipe
// (core/edit/recipe.h, written by StudioController::saveProject) whose "editor" section is
// editorState(): the sources with their codes and thumbnails, the exact per-block weights, the
// attribute edit and the morph settings. Projects of the first format (before recipes) still open.
#include <QJsonObject>
#include <QObject>
#include <QStringList>
#include <QUndoStack>

#include "ui/types.h"

namespace automod::ui {

/// An attribute edit on the mix (docs/design.md §4): z' = normalise(z + strength·v) on the blocks of `scales`.
/// Built from exemplar photos or loaded from an attribute JSON (core/edit/attribute.h); an empty
/// vector means no attribute. Plain values (no LibTorch), saved with the project.
struct AttributeEdit {
  QString name;
  QVector<float> vector;
  /// The blocks it touches, in core/edit/ranges.h syntax ("0-1,4").
  QString scales;
  /// Resolution of the model it was built with, and its decoder blocks (one more than the
  /// resolution implies for a flip-invariance model; 0 = implied).
  int resolution = 0;
  int blocks = 0;
  QStringList positives, negatives;
  double strength = 0;
  bool isNull() const { return vector.isEmpty(); }
  bool operator==(const AttributeEdit&) const = default;
};

class StudioDocument : public QObject {
  Q_OBJECT
 public:
  explicit StudioDocument(QObject* parent = nullptr);

  /// The decoder blocks of the current model (their count sets the mix table's size).
  void setLayout(const BlockLayout& layout);
  const BlockLayout& layout() const { return layout_; }
  int blocks() const { return layout_.size(); }

  const QVector<Source>& sources() const { return sources_; }
  const MixSettings& mix() const { return mix_; }
  QVector<QVector<float>> latents() const;
  QUndoStack* undoStack() { return &undo_; }

  /// Undoable actions.
  void addSource(const Source& source);
  void removeSource(int index);
  /// Sets source `source`'s weight in every block of `range`; `mergeKey` ≥ 0 merges a drag.
  void setRangeWeight(Range range, int source, double weight, int mergeKey = -1);
  /// Makes `source` the only contributor of `range` (a drop on a range panel).
  void assignRange(Range range, int source);
  /// Sets one block's weights (advanced view).
  void setBlockSource(int block, int source);
  void setMix(const MixSettings& mix, const QString& label, int mergeKey = -1);

  /// The attribute applied on top of the mix (isNull() when none). Each change is one undo step;
  /// `mergeKey` ≥ 0 merges a strength drag.
  const AttributeEdit& attribute() const { return attribute_; }
  void setAttribute(const AttributeEdit& attribute, const QString& label, int mergeKey = -1);
  void setAttributeStrength(double strength, int mergeKey = -1);
  void setAttributeScales(const QString& scales);
  void removeAttribute();

  /// The weight shown for a range: the weight in its first block.
  double rangeWeight(Range range, int source) const;

  /// The Morph tab's settings (saved with the project; not an undo step).
  const MorphSettings& morph() const { return morph_; }
  void setMorph(const MorphSettings& morph);

  /// What a project's "editor" section holds, and back (also the whole file of a first-format
  /// project). restoreEditorState replaces the document (undo history included) only when the
  /// state is valid; otherwise it says why.
  QJsonObject editorState() const;
  bool restoreEditorState(const QJsonObject& state, QString* error);
  /// Opens a project file: a recipe with an "editor" section, or a first-format project.
  bool load(const QString& path, QString* error);
  /// Whether there is work a save would keep: changes since the last save or open, including those
  /// whose undo steps were cleared (a model change re-encodes the photos and clears the history).
  bool isModified() const { return modified_outside_undo_ || !undo_.isClean(); }
  /// Marks the current state as saved (or freshly opened).
  void setSaved();
  /// Keeps the document modified across an undo-history clear.
  void setModifiedOutsideUndo() { modified_outside_undo_ = true; }
  /// The project file the document was opened from or saved to.
  QString filePath() const { return file_path_; }
  void setFilePath(const QString& path) { file_path_ = path; }
  void clear();

  // Used by the undo commands.
  void applyMix(const MixSettings& mix);
  void insertSource(int index, const Source& source, const MixSettings& mix);
  void eraseSource(int index, const MixSettings& mix);
  void applyAttributeEdit(const AttributeEdit& attribute);

 Q_SIGNALS:
  void sourcesChanged();
  void mixChanged();
  void attributeChanged();
  void morphChanged();

 private:
  MixSettings normalisedShape(MixSettings mix) const;

  BlockLayout layout_;
  QVector<Source> sources_;
  MixSettings mix_;
  AttributeEdit attribute_;
  MorphSettings morph_;
  QUndoStack undo_;
  QString file_path_;
  bool modified_outside_undo_ = false;
};

}  // namespace automod::ui
