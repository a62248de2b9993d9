#pragma once
// The Sample tab: lock scale ranges to the current mix, draw the others at random (seeded), browse
// the gallery, keep a sample as a new source, reroll.
#include <QWidget>

#include "ui/types.h"

class QCheckBox;
class QListWidget;
class QPushButton;
class QSpinBox;

namespace automod::ui {

class StudioController;

class SampleTab : public QWidget {
  Q_OBJECT
 public:
  explicit SampleTab(StudioController* controller, QWidget* parent = nullptr);
  QListWidget* gallery() const { return gallery_; }
  QSpinBox* seedSpin() const { return seed_; }
  void generate();
  void reroll();
  /// Adds the selected sample to the photo strip (it is encoded like a photo).
  void keepSelected();
  Ranges lockedRanges() const;
  QCheckBox* lockCheck(Range range) const { return lock_[int(range)]; }

 private:
  StudioController* controller_;
  QCheckBox* lock_[3];
  QSpinBox* seed_;
  QSpinBox* count_;
  QListWidget* gallery_;
  QPushButton *generate_, *reroll_, *keep_;
};

}  // namespace automod::ui
