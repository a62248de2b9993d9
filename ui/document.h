#pragma once
// The document: core's EditState (core/edit/edit_state.h: the sources with their codes, the mix,
// the attribute, the morph, the model they belong to) with one QUndoStack. Every user action is one
// QUndoCommand holding the state before and after it (a slider drag merges into one step); the
// widgets read plain Qt values converted from the state once per change (sources(), mix(), ...).
// No computation here: plans and codes are core's, jobs run on the worker (ui/inference_worker).
#include <QObject>
#include <QStringList>
#include <QUndoStack>

#include <memory>

#include "ui/types.h"

namespace automod {
class EditState;
struct EditSource;
}  // namespace automod

namespace automod::ui {

/// An attribute edit on the mix (docs/design.md §4): z' = normalise(z + strength·v) on the blocks of
/// `scales`: core's EditAttribute as plain values (widgets never include torch).
struct AttributeEdit {
  QString name;
  QVector<float> vector;
  /// The blocks it touches, in core/model/ranges.h syntax ("0-1,4").
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
  ~StudioDocument() override;

  /// The whole state; every job the editor runs takes a copy of it.
  const EditState& state() const { return *state_; }

  /// The decoder blocks of the current model (their count sets the mix table's size).
  const BlockLayout& layout() const;
  int blocks() const { return layout().size(); }

  const QVector<Source>& sources() const { return sources_; }
  /// Index of the source with core id `id`, −1 when none.
  int indexOf(quint64 id) const;
  const MixSettings& mix() const { return mix_; }
  const AttributeEdit& attribute() const { return attribute_; }
  const MorphSettings& morph() const { return morph_; }
  QUndoStack* undoStack() { return &undo_; }

  // Undoable actions (one step each).
  void addSource(const EditSource& source, const QString& label = {});
  void removeSource(int index);
  /// Sets source `source`'s weight in every block of `range`; `mergeKey` ≥ 0 merges a drag.
  void setRangeWeight(Range range, int source, double weight, int mergeKey = -1);
  /// Makes `source` the only contributor of `range` (a drop on a range panel).
  void assignRange(Range range, int source);
  /// Sets one block's weights (advanced view).
  void setBlockSource(int block, int source);
  /// Whether some range's blocks are mixed differently (core's EditState::mixedPerBlock).
  bool mixedPerBlock() const;
  /// Back to mixing by ranges (core's EditState::mixByScales), one undo step.
  void mixByScales();
  void setMix(const MixSettings& mix, const QString& label, int mergeKey = -1);
  /// The attribute applied on top of the mix (isNull() when none); `mergeKey` ≥ 0 merges a drag.
  void setAttribute(const AttributeEdit& attribute, const QString& label, int mergeKey = -1);
  void setAttributeStrength(double strength, int mergeKey = -1);
  void setAttributeScales(const QString& scales);
  void removeAttribute();
  /// Replaces the source with id `source.id` (its codes after a refinement, say) as one step.
  void replaceSource(const EditSource& source, const QString& label);
  /// The weight shown for a range: the weight in its first block.
  double rangeWeight(Range range, int source) const;

  /// The Morph tab's settings (saved with the project; not an undo step).
  void setMorph(const MorphSettings& morph);

  /// Not undoable: the state after a model change, after opening a project, or a source the model
  /// encoded again (`keepHistory` false clears the undo history, whose steps hold another model's codes).
  void resetState(const EditState& state, bool keepHistory = false);
  /// Not undoable either: one source brought back by the new model after a model change.
  void updateSource(const EditSource& source);

  /// Whether there is work a save would keep: changes since the last save or open, including those
  /// whose undo steps were cleared (a model change encodes the photos again and clears the history).
  bool isModified() const { return modified_outside_undo_ || !undo_.isClean(); }
  void setSaved();
  void setModifiedOutsideUndo() { modified_outside_undo_ = true; }
  /// The project file the document was opened from or saved to.
  QString filePath() const { return file_path_; }
  void setFilePath(const QString& path) { file_path_ = path; }
  /// An empty document for the current model (File → New Project).
  void clear();

  /// Used by the undo commands: makes `state` current and says what changed.
  void apply(const EditState& state);

 Q_SIGNALS:
  void sourcesChanged();
  void mixChanged();
  void attributeChanged();
  void morphChanged();
  /// Any change of the state that a decode would see.
  void stateChanged();

 private:
  void push(const EditState& after, const QString& label, int mergeKey = -1);
  void refreshViews(bool sources, bool mix, bool attribute, bool morph);

  std::unique_ptr<EditState> state_;
  QVector<Source> sources_;
  MixSettings mix_;
  AttributeEdit attribute_;
  MorphSettings morph_;
  QUndoStack undo_;
  QString file_path_;
  bool modified_outside_undo_ = false;
};

}  // namespace automod::ui
