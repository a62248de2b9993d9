#pragma once
// The Attributes tab (docs/design.md §1.4, paper Sec. 4): drop a few photos with an attribute into the
// positive well and a few without it into the negative one; v = mean φ(positives) − mean φ(negatives)
// is restricted to the chosen scale ranges and applied to the current result with a strength slider.
// Attributes are saved and loaded as the CLI's JSON files; the applied one is part of the document
// (undoable, saved with the project).
#include <QGroupBox>
#include <QWidget>

#include <optional>

#include "ui/document.h"
#include "ui/result_pane.h"

class QCheckBox;
class QFormLayout;
class QGridLayout;
class QHBoxLayout;
class QLabel;
class QLineEdit;
class QListWidget;
class QPushButton;
class QSlider;

namespace automod::ui {

class StudioController;

/// One well of exemplars: accepts photos from the file manager (encoded through the controller)
/// and sources dragged from the photo strip.
class ExemplarWell : public QGroupBox {
  Q_OBJECT
 public:
  struct Exemplar {
    QString name;
    QString path;  ///< the photo file (listed in the attribute's JSON)
    QVector<float> latent;
    QImage thumbnail;
  };
  ExemplarWell(StudioController* controller, const QString& title, int tag, QWidget* parent = nullptr);
  const QVector<Exemplar>& exemplars() const { return exemplars_; }
  int count() const { return exemplars_.size(); }
  QListWidget* list() const { return list_; }
  void add(const Exemplar& exemplar);
  void removeSelected();
  void clear();
  /// Encodes these exemplar photos again (the model changed); they come back into this well.
  void reencode(const QStringList& files);

 Q_SIGNALS:
  void changed();

 protected:
  void dragEnterEvent(QDragEnterEvent* event) override;
  void dragMoveEvent(QDragMoveEvent* event) override;
  void dropEvent(QDropEvent* event) override;

 private:
  StudioController* controller_;
  int tag_;
  QListWidget* list_;
  QVector<Exemplar> exemplars_;
};

class AttributeTab : public QWidget {
  Q_OBJECT
 public:
  enum Well { Positive = 0, Negative = 1 };
  explicit AttributeTab(StudioController* controller, QWidget* parent = nullptr);

  ExemplarWell* well(Well w) const { return wells_[w]; }
  QLineEdit* nameEdit() const { return name_; }
  QCheckBox* rangeCheck(Range r) const { return ranges_[int(r)]; }
  /// −300…300: the strength ×100.
  QSlider* strengthSlider() const { return strength_; }
  ScaledImageLabel* resultView() const { return result_; }
  QString statusText() const;
  /// The tab's attribute: built from the wells, loaded from a file, or the document's after undo.
  std::optional<AttributeEdit> attribute() const { return current_; }

  /// Puts the tab's attribute on the result (one undo step) at the slider's strength.
  bool apply();
  void removeFromResult();
  bool saveAttribute(const QString& path);
  bool loadAttribute(const QString& path);

 Q_SIGNALS:
  /// A line for the status bar (errors say why).
  void message(const QString& text);

 private:
  // The constructor's parts.
  void createWells(QWidget* parent);
  QFormLayout* createForm(QWidget* parent);
  QHBoxLayout* createStrengthRow(QWidget* parent);
  QGridLayout* createButtons(QWidget* parent);
  void connectDocument();

  void rebuild();
  void syncFromDocument();
  void onRangesToggled();
  void onStrengthChanged(int value);
  Ranges checkedRanges() const;
  void updateStatus(const QString& text = {});
  void updateButtons();
  void showImage(const QImage& image, bool final);

  StudioController* controller_;
  ExemplarWell* wells_[2];
  QLineEdit* name_;
  QCheckBox* ranges_[3];
  QSlider* strength_;
  QLabel* strength_label_;
  QLabel* status_;
  QPushButton *apply_, *remove_, *save_, *load_, *clear_;
  ScaledImageLabel* result_;
  QLabel* caption_;
  std::optional<AttributeEdit> current_;
  int drag_key_ = -1;
  static int next_key_;
  static int next_tag_;
};

}  // namespace automod::ui
