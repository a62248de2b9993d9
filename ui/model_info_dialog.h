#pragma once
// Model → Model Info: what the open model is, as a form (name, resolution, latent size, blocks and
// their named scales, widths, training, alignment, where an imported model came from), with the
// full JSON behind a "Details" button.
#include <QDialog>
#include <QJsonObject>

class QFormLayout;

namespace automod::ui {

class ModelInfoDialog : public QDialog {
  Q_OBJECT
 public:
  /// `info` is StudioController::modelInfo() parsed; `name` and `device` as the controller says.
  ModelInfoDialog(const QString& name, const QString& device, const QJsonObject& info, QWidget* parent = nullptr);
  /// The value shown for a row label ("Resolution"), or a null string when there is no such row.
  QString value(const QString& label) const;

 private:
  void addRow(const QString& label, const QString& value);
  QFormLayout* form_;
};

}  // namespace automod::ui
