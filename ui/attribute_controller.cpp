#include <torch/torch.h>

#include "ui/attribute_controller.h"

#include <QFileInfo>

#include "core/edit/attribute.h"
#include "core/edit/edit_state.h"
#include "core/model/automodulator.h"
#include "core/util/error.h"
#include "ui/studio_controller.h"
#include "ui/tensor_image.h"

namespace automod::ui {

AttributeController::AttributeController(StudioController* controller) : QObject(controller), controller_(controller) {}

std::optional<AttributeEdit> AttributeController::build(const QVector<QVector<float>>& positives,
                                                        const QVector<QVector<float>>& negatives,
                                                        const QString& scales, const QString& name,
                                                        QString* error) const {
  auto fail = [&](const QString& why) {
    if (error) *error = why;
    return std::nullopt;
  };
  const auto model = controller_->model();
  if (!model) return fail(tr("no model is loaded"));
  if (positives.size() < 2 || negatives.size() < 2)
    return fail(tr("an attribute needs at least 2 positive and 2 negative exemplars (got %1 + %2)")
                    .arg(positives.size())
                    .arg(negatives.size()));
  if (scales.trimmed().isEmpty()) return fail(tr("choose at least one scale range"));
  try {
    std::vector<torch::Tensor> pos, neg;
    for (const auto& z : positives) pos.push_back(fromFloatVector(z));
    for (const auto& z : negatives) neg.push_back(fromFloatVector(z));
    const auto ranges = parseBlockRanges(scales.toStdString(), BlockLayout::of(*model));
    EditAttribute a;
    a.vector = attributeFromLatents(*model, pos, neg, ranges, name.toStdString());
    auto edit = toAttributeEdit(a);
    edit.scales = scales;
    return edit;
  } catch (const std::exception& e) {
    return fail(QString::fromStdString(errorMessage(e)));
  }
}

bool AttributeController::save(const QString& path, const AttributeEdit& edit, QString* error) const {
  try {
    if (edit.isNull()) throw Error("there is no attribute to save");
    if (edit.scales.trimmed().isEmpty()) throw Error("the attribute has no scale range");
    toAttributeVector(edit).save(path.toStdString());
    return true;
  } catch (const std::exception& e) {
    if (error) *error = QString::fromStdString(errorMessage(e));
    return false;
  }
}

std::optional<AttributeEdit> AttributeController::load(const QString& path, QString* error) const {
  try {
    const auto model = controller_->model();
    if (!model) throw Error("no model is loaded");
    const auto a = AttributeVector::load(path.toStdString());
    if (a.resolution != model->resolution() || a.numBlocks() != model->numBlocks())
      throw Error("the attribute was built for a " + std::to_string(a.resolution) + " px model with " +
                  std::to_string(a.numBlocks()) + " blocks but this one is " + std::to_string(model->resolution()) +
                  " px with " + std::to_string(model->numBlocks()));
    if (a.latent_dim != model->config().latent_dim)
      throw Error("the attribute has " + std::to_string(a.latent_dim) + "-d vectors but the model uses " +
                  std::to_string(model->config().latent_dim) + "-d latents");
    EditAttribute e;
    e.vector = a;
    auto edit = toAttributeEdit(e);
    if (edit.name.isEmpty()) edit.name = QFileInfo(path).completeBaseName();
    return edit;
  } catch (const std::exception& e) {
    if (error) *error = QString::fromStdString(errorMessage(e));
    return std::nullopt;
  }
}

QString AttributeController::scalesOf(Ranges ranges) const {
  return QString::fromStdString(rangesToString(blockRanges(ranges, controller_->document()->layout())));
}

Ranges AttributeController::rangesOf(const QString& scales) const {
  if (scales.trimmed().isEmpty()) return {};
  return ui::rangesOf(scales.toStdString(), controller_->document()->layout());
}

}  // namespace automod::ui
