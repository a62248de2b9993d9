#pragma once
// Attribute vectors for the Attributes tab (docs/design.md §1.4): built from encoded exemplars by core
// (v = mean(positives) − mean(negatives), core/edit/attribute.h), saved and loaded as the CLI's JSON
// files, and the conversion between block ranges and the tab's named scale ranges.
#include <QObject>
#include <QString>
#include <QVector>

#include <optional>

#include "ui/document.h"

namespace automod::ui {

class StudioController;

class AttributeController : public QObject {
  Q_OBJECT
 public:
  explicit AttributeController(StudioController* controller);

  /// The attribute of these exemplar codes restricted to `scales`, for the current model; nullopt
  /// with the reason when there are fewer than 2 + 2 exemplars or the scales do not fit.
  std::optional<AttributeEdit> build(const QVector<QVector<float>>& positives, const QVector<QVector<float>>& negatives,
                                     const QString& scales, const QString& name, QString* error = nullptr) const;
  /// Attribute JSON files (core/edit/attribute.h's format, shared with `automod attribute`).
  bool save(const QString& path, const AttributeEdit& attribute, QString* error = nullptr) const;
  /// Fails, saying why, for a bad file or one made for another model size.
  std::optional<AttributeEdit> load(const QString& path, QString* error = nullptr) const;
  /// The block ranges ("0-1,4") of a set of scale ranges in the current model.
  QString scalesOf(Ranges ranges) const;
  /// The scale ranges whose blocks `scales` covers entirely.
  Ranges rangesOf(const QString& scales) const;

 private:
  StudioController* controller_;
};

}  // namespace automod::ui
