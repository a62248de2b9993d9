#pragma once
// The Morph tab (docs/design.md §1.5): choose photos A and B, morph globally or only some scale ranges (the
// others stay A), scrub t ∈ [0, 1] (frames decoded on the worker, coalesced), and export the morph as
// an MP4 in the background with a cancellable progress dialog.
#include <QGroupBox>
#include <QHash>
#include <QPointer>
#include <QVBoxLayout>
#include <QWidget>

#include "ui/types.h"
#include "ui/result_pane.h"

class QCheckBox;
class QComboBox;
class QLabel;
class QProgressDialog;
class QPushButton;
class QRadioButton;
class QSlider;
class QSpinBox;

namespace automod::ui {

class StudioController;

/// Photo A or B: a combo box over the strip's photos that also takes drops (a photo from the strip
/// selects it; a file is added to the strip, then selected).
class MorphSlot : public QGroupBox {
  Q_OBJECT
 public:
  MorphSlot(StudioController* controller, const QString& title, QWidget* parent = nullptr);
  QComboBox* combo() const { return combo_; }
  int source() const;
  void setSource(int index);
  /// Refills the combo box from the document. A photo the user chose stays chosen while it exists;
  /// otherwise the slot shows `fallback` (A: the first photo, B: the second).
  void refresh(int fallback);

 Q_SIGNALS:
  void sourceChanged();

 protected:
  void dragEnterEvent(QDragEnterEvent* event) override;
  void dragMoveEvent(QDragMoveEvent* event) override;
  void dropEvent(QDropEvent* event) override;

 private:
  StudioController* controller_;
  QComboBox* combo_;
  QStringList waiting_;  // dropped files being encoded
  bool chosen_ = false;  // the user picked this slot's photo
};

class MorphTab : public QWidget {
  Q_OBJECT
 public:
  explicit MorphTab(StudioController* controller, QWidget* parent = nullptr);

  MorphSlot* slotA() const { return slots_[0]; }
  MorphSlot* slotB() const { return slots_[1]; }
  QRadioButton* globalButton() const { return global_; }
  QRadioButton* perRangeButton() const { return per_range_; }
  QCheckBox* rangeCheck(Range r) const { return ranges_[int(r)]; }
  /// t × 1000.
  QSlider* slider() const { return slider_; }
  QSpinBox* framesSpin() const { return frames_; }
  ScaledImageLabel* frameView() const { return frame_; }
  /// The export's progress dialog while a video is being written.
  QProgressDialog* progressDialog() const;
  /// Bit r = Range r: the ranges that move from A to B (all of them in global mode).
  Ranges movingRanges() const;
  double t() const;

  /// Starts writing the morph to `path` (MP4) with a progress dialog; false (with a message) when it
  /// cannot start.
  bool exportVideo(const QString& path);

 Q_SIGNALS:
  void message(const QString& text);

 private:
  // Construction, in parts.
  QWidget* createSlots(QWidget* parent);
  QGroupBox* createModeBox(QWidget* parent);
  QGroupBox* createVideoBox(QWidget* parent);
  QVBoxLayout* createFrameView();
  void connectController();

  void refreshSources();
  void requestFrame();
  void updateControls();
  void exportVideoDialog();
  /// A control changed: the document's morph settings follow (they are saved with the project).
  void settingsChanged();
  void storeSettings();
  /// The document's settings (an opened project's) into the controls.
  void applySettings();

  StudioController* controller_;
  MorphSlot* slots_[2];
  QRadioButton *global_, *per_range_;
  QCheckBox* ranges_[3];
  QSlider* slider_;
  QLabel* t_label_;
  QSpinBox* frames_;
  QSpinBox* fps_;
  QPushButton *export_, *swap_;
  ScaledImageLabel* frame_;
  QLabel* caption_;
  QPointer<QProgressDialog> progress_;
};

}  // namespace automod::ui
