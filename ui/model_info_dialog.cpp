#include "ui/model_info_dialog.h"

#include <QDialogButtonBox>
#include <QFormLayout>
#include <QJsonArray>
#include <QJsonDocument>
#include <QLabel>
#include <QLocale>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QVBoxLayout>

#include "core/model/ranges.h"

namespace automod::ui {

namespace {
QString join(const QJsonArray& a) {
  QStringList parts;
  for (const auto& v : a) parts << QString::number(v.toInt());
  return parts.join(", ");
}
}  // namespace

ModelInfoDialog::ModelInfoDialog(const QString& name, const QString& device, const QJsonObject& info,
                                 QWidget* parent)
    : QDialog(parent) {
  setWindowTitle(tr("Model Info"));
  auto* layout = new QVBoxLayout(this);
  form_ = new QFormLayout;
  form_->setFieldGrowthPolicy(QFormLayout::ExpandingFieldsGrow);
  layout->addLayout(form_);
  const auto config = info["config"].toObject();
  const auto meta = info["metadata"].toObject();
  const QLocale locale;
  addRow(tr("Name"), name);
  if (const auto file = info["file"].toString(); !file.isEmpty()) addRow(tr("File"), file);
  const int resolution = info["resolution"].toInt();
  const int full = config["resolution"].toInt();
  addRow(tr("Resolution"), resolution == full || full == 0
                               ? tr("%1 × %1 px").arg(resolution)
                               : tr("%1 × %1 px (trained so far; the model grows to %2 px)").arg(resolution).arg(full));
  addRow(tr("Latent size"), tr("%1 numbers per code").arg(config["latent_dim"].toInt()));
  // The decoder blocks and the named scales they make up (core/model/ranges.h).
  const int blocks = info["decoder_blocks"].toInt();
  if (blocks > 0) {
    const auto layout_of = BlockLayout::forResolution(resolution, config["extra_8x8_block"].toBool());
    QStringList scales;
    for (Scale s : allScales())
      if (hasScale(s, layout_of)) {
        const auto r = scaleRange(s, layout_of);
        scales << tr("%1 %2").arg(QString::fromUtf8(scaleName(s))).arg(
                      r.first == r.last ? QString::number(r.first) : QStringLiteral("%1–%2").arg(r.first).arg(r.last));
      }
    addRow(tr("Decoder blocks"), tr("%1 (%2)").arg(blocks).arg(scales.join(", ")));
  }
  if (const auto widths = config["widths"].toArray(); !widths.isEmpty())
    addRow(tr("Channel widths"), join(widths) +
                                     (config["width_table"].toString().isEmpty()
                                          ? QString()
                                          : tr(" (table %1)").arg(config["width_table"].toString())));
  if (info.contains("encoder_parameters"))
    addRow(tr("Parameters"), tr("encoder %1, decoder %2")
                                 .arg(locale.toString(info["encoder_parameters"].toInteger()))
                                 .arg(locale.toString(info["decoder_parameters"].toInteger())));
  if (meta["untrained"].toBool())
    addRow(tr("Training"), tr("untrained (freshly initialised): its images are noise"));
  else if (meta.contains("images_seen"))
    addRow(tr("Training"), meta["preset"].toString().isEmpty()
                               ? tr("%1 images seen").arg(locale.toString(meta["images_seen"].toInteger()))
                               : tr("%1 images seen, preset %2")
                                     .arg(locale.toString(meta["images_seen"].toInteger()))
                                     .arg(meta["preset"].toString()));
  const QString alignment = meta["alignment"].toString();
  addRow(tr("Photo alignment"), alignment == "celebahq" ? tr("CelebA-HQ style (eyes and mouth)")
                                : alignment == "none"   ? tr("none: photos are centre-cropped")
                                                        : tr("FFHQ style (eyes and mouth)"));
  if (const auto p = meta["provenance"].toObject(); !p.isEmpty()) {
    addRow(tr("Imported from"), tr("%1, iteration %2").arg(p["file"].toString()).arg(p["iteration"].toInteger()));
    addRow(tr("SHA-256"), p["sha256"].toString());
    if (const auto left = p["not_carried"].toArray(); !left.isEmpty())
      addRow(tr("Not carried over"), QString::number(left.size()) + tr(" tensors (see Details)"));
  }
  addRow(tr("Runs on"), device);

  auto* details = new QPlainTextEdit(QString::fromUtf8(QJsonDocument(info).toJson(QJsonDocument::Indented)), this);
  details->setReadOnly(true);
  details->setVisible(false);
  details->setMinimumHeight(200);
  details->setAccessibleName(tr("Model details as JSON"));
  layout->addWidget(details, 1);
  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Close, this);
  auto* more = buttons->addButton(tr("&Details"), QDialogButtonBox::ActionRole);
  more->setCheckable(true);
  connect(more, &QPushButton::toggled, details, &QWidget::setVisible);
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
  layout->addWidget(buttons);
}

void ModelInfoDialog::addRow(const QString& label, const QString& value) {
  auto* field = new QLabel(value, this);
  field->setTextInteractionFlags(Qt::TextSelectableByMouse);
  field->setWordWrap(true);
  form_->addRow(label + ':', field);
}

QString ModelInfoDialog::value(const QString& label) const {
  for (int row = 0; row < form_->rowCount(); ++row) {
    auto* l = qobject_cast<QLabel*>(form_->itemAt(row, QFormLayout::LabelRole)->widget());
    auto* f = qobject_cast<QLabel*>(form_->itemAt(row, QFormLayout::FieldRole)->widget());
    if (l && f && l->text() == label + ':') return f->text();
  }
  return {};
}

}  // namespace automod::ui
