#pragma once
// The Mix tab: coarse / intermediate / fine drop panels with a blend slider per photo, an advanced
// view with one row per decoder block, and the live result (coarse-to-fine preview first).
#include <QGroupBox>
#include <QLabel>
#include <QSlider>
#include <QWidget>

#include "ui/types.h"
#include "ui/result_pane.h"

class QComboBox;
class QVBoxLayout;
class QGridLayout;

namespace automod::ui {

class StudioController;

class RangePanel : public QGroupBox {
  Q_OBJECT
 public:
  RangePanel(StudioController* controller, Range range, QWidget* parent = nullptr);
  void rebuild();
  void sync();
  Range range() const { return range_; }
  /// The blend slider of source `index` (tests move it).
  QSlider* slider(int index) const { return index < sliders_.size() ? sliders_[index] : nullptr; }

 protected:
  void dragEnterEvent(QDragEnterEvent* event) override;
  void dropEvent(QDropEvent* event) override;

 private:
  StudioController* controller_;
  Range range_;
  QLabel* content_;
  QVBoxLayout* rows_;
  QVector<QSlider*> sliders_;
  int drag_key_ = -1;
  static int next_key_;
};

class MixTab : public QWidget {
  Q_OBJECT
 public:
  explicit MixTab(StudioController* controller, QWidget* parent = nullptr);
  RangePanel* panel(Range range) const { return panels_[int(range)]; }
  ScaledImageLabel* resultView() const { return result_; }
  QGroupBox* advancedBox() const { return advanced_; }

 private:
  void rebuildBlocks();
  void syncBlocks();
  void showImage(const QImage& image, bool final);

  StudioController* controller_;
  RangePanel* panels_[3];
  QGroupBox* advanced_;
  QGridLayout* block_rows_;
  QVector<QComboBox*> block_combos_;
  ScaledImageLabel* result_;
  QLabel* caption_;
};

}  // namespace automod::ui
