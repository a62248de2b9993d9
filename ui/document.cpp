#include "ui/document.h"

#include <QBuffer>

#include <algorithm>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSaveFile>

#include "core/util/error.h"
#include "core/util/json_limits.h"

namespace automod::ui {
namespace {

class MixCommand : public QUndoCommand {
 public:
  MixCommand(StudioDocument* doc, MixSettings before, MixSettings after, const QString& label, int key)
      : QUndoCommand(label), doc_(doc), before_(std::move(before)), after_(std::move(after)), key_(key) {}
  void undo() override { doc_->applyMix(before_); }
  void redo() override { doc_->applyMix(after_); }
  int id() const override { return key_ < 0 ? -1 : 1000 + key_; }
  bool mergeWith(const QUndoCommand* other) override {
    auto* o = static_cast<const MixCommand*>(other);
    if (o->key_ != key_) return false;
    after_ = o->after_;
    return true;
  }

 private:
  StudioDocument* doc_;
  MixSettings before_, after_;
  int key_;
};

class SourceCommand : public QUndoCommand {
 public:
  SourceCommand(StudioDocument* doc, bool add, int index, Source source, MixSettings with, MixSettings without,
                const QString& label)
      : QUndoCommand(label), doc_(doc), add_(add), index_(index), source_(std::move(source)),
        with_(std::move(with)), without_(std::move(without)) {}
  void redo() override { add_ ? doc_->insertSource(index_, source_, with_) : doc_->eraseSource(index_, without_); }
  void undo() override { add_ ? doc_->eraseSource(index_, without_) : doc_->insertSource(index_, source_, with_); }

 private:
  StudioDocument* doc_;
  bool add_;
  int index_;
  Source source_;
  MixSettings with_, without_;
};

class AttributeCommand : public QUndoCommand {
 public:
  // Merge ids apart from MixCommand's (1000 + key).
  static constexpr int kIdBase = 0x40000000;
  AttributeCommand(StudioDocument* doc, AttributeEdit before, AttributeEdit after, const QString& label, int key)
      : QUndoCommand(label), doc_(doc), before_(std::move(before)), after_(std::move(after)), key_(key) {}
  void undo() override { doc_->applyAttributeEdit(before_); }
  void redo() override { doc_->applyAttributeEdit(after_); }
  int id() const override { return key_ < 0 ? -1 : kIdBase + key_; }
  bool mergeWith(const QUndoCommand* other) override {
    auto* o = dynamic_cast<const AttributeCommand*>(other);
    if (!o || o->key_ != key_) return false;
    after_ = o->after_;
    return true;
  }

 private:
  StudioDocument* doc_;
  AttributeEdit before_, after_;
  int key_;
};

QJsonArray floatsToJson(const QVector<float>& v) {
  QJsonArray a;
  for (float x : v) a.append(double(x));
  return a;
}

QJsonObject attributeToJson(const AttributeEdit& a) {
  return QJsonObject{{"name", a.name},
                     {"scales", a.scales},
                     {"resolution", a.resolution},
                     {"blocks", a.blocks},
                     {"strength", a.strength},
                     {"positives", QJsonArray::fromStringList(a.positives)},
                     {"negatives", QJsonArray::fromStringList(a.negatives)},
                     {"vector", floatsToJson(a.vector)}};
}

AttributeEdit attributeFromJson(const QJsonObject& o) {
  AttributeEdit a;
  a.name = o.value("name").toString();
  a.scales = o.value("scales").toString();
  a.resolution = o.value("resolution").toInt();
  a.blocks = o.value("blocks").toInt();
  a.strength = o.value("strength").toDouble();
  for (const auto& x : o.value("positives").toArray()) a.positives << x.toString();
  for (const auto& x : o.value("negatives").toArray()) a.negatives << x.toString();
  for (const auto& x : o.value("vector").toArray()) a.vector.push_back(float(x.toDouble()));
  return a;
}

QString imageToBase64(const QImage& image) {
  QByteArray bytes;
  QBuffer buffer(&bytes);
  buffer.open(QIODevice::WriteOnly);
  image.save(&buffer, "PNG");
  return QString::fromLatin1(bytes.toBase64());
}

QImage imageFromBase64(const QJsonValue& v) {
  QImage image;
  image.loadFromData(QByteArray::fromBase64(v.toString().toLatin1()), "PNG");
  // PNG decoding picks its own pixel format; images in the document are RGB888 (or grey) like the
  // model's output, so that a reopened project compares equal to the saved one.
  if (!image.isNull() && image.format() != QImage::Format_Grayscale8) image = image.convertToFormat(QImage::Format_RGB888);
  return image;
}

}  // namespace

StudioDocument::StudioDocument(QObject* parent) : QObject(parent) {}

void StudioDocument::setLayout(const BlockLayout& layout) {
  layout_ = layout;
  mix_ = normalisedShape(mix_);
  Q_EMIT mixChanged();
}

MixSettings StudioDocument::normalisedShape(MixSettings mix) const {
  const int n = sources_.size();
  mix.weights.resize(blocks());
  for (auto& row : mix.weights) {
    const int old = row.size();
    row.resize(n);
    for (int i = old; i < n; ++i) row[i] = (i == 0) ? 1.0 : 0.0;
  }
  return mix;
}

QVector<QVector<float>> StudioDocument::latents() const {
  QVector<QVector<float>> out;
  for (const auto& s : sources_) out.push_back(s.latent);
  return out;
}

void StudioDocument::addSource(const Source& source) {
  const int index = sources_.size();
  MixSettings with = mix_;
  for (auto& row : with.weights) {
    row.resize(index);
    row.push_back(index == 0 ? 1.0 : 0.0);
  }
  if (with.weights.size() < blocks()) {
    with.weights.resize(blocks());
    for (auto& row : with.weights) row.resize(index + 1);
  }
  undo_.push(new SourceCommand(this, true, index, source, with, mix_, tr("Add %1").arg(source.name)));
}

void StudioDocument::removeSource(int index) {
  if (index < 0 || index >= sources_.size()) return;
  MixSettings without = mix_;
  for (auto& row : without.weights) {
    if (index < row.size()) row.remove(index);
    // A block that took only the removed photo takes the first remaining one (a block needs a source).
    if (!row.isEmpty() && std::all_of(row.begin(), row.end(), [](double w) { return w == 0.0; })) row[0] = 1.0;
  }
  undo_.push(new SourceCommand(this, false, index, sources_[index], mix_, without,
                               tr("Remove %1").arg(sources_[index].name)));
}

void StudioDocument::insertSource(int index, const Source& source, const MixSettings& mix) {
  sources_.insert(index, source);
  mix_ = normalisedShape(mix);
  Q_EMIT sourcesChanged();
  Q_EMIT mixChanged();
}

void StudioDocument::eraseSource(int index, const MixSettings& mix) {
  sources_.remove(index);
  mix_ = normalisedShape(mix);
  Q_EMIT sourcesChanged();
  Q_EMIT mixChanged();
}

void StudioDocument::applyMix(const MixSettings& mix) {
  mix_ = normalisedShape(mix);
  Q_EMIT mixChanged();
}

void StudioDocument::setMix(const MixSettings& mix, const QString& label, int mergeKey) {
  auto after = normalisedShape(mix);
  if (after == mix_) return;
  undo_.push(new MixCommand(this, mix_, after, label, mergeKey));
}

void StudioDocument::setRangeWeight(Range range, int source, double weight, int mergeKey) {
  if (source < 0 || source >= sources_.size()) return;
  MixSettings mix = mix_;
  auto [first, last] = rangeBlocks(range, layout_);
  for (int b = first; b <= last && b < mix.weights.size(); ++b) mix.weights[b][source] = weight;
  static const char* names[] = {QT_TR_NOOP("coarse"), QT_TR_NOOP("intermediate"), QT_TR_NOOP("fine")};
  setMix(mix, tr("Blend %1 %2").arg(tr(names[int(range)]), sources_[source].name), mergeKey);
}

void StudioDocument::assignRange(Range range, int source) {
  if (source < 0 || source >= sources_.size()) return;
  MixSettings mix = mix_;
  auto [first, last] = rangeBlocks(range, layout_);
  for (int b = first; b <= last && b < mix.weights.size(); ++b)
    for (int i = 0; i < mix.weights[b].size(); ++i) mix.weights[b][i] = (i == source) ? 1.0 : 0.0;
  setMix(mix, tr("Use %1 for a range").arg(sources_[source].name));
}

void StudioDocument::setBlockSource(int block, int source) {
  if (block < 0 || block >= blocks() || source < 0 || source >= sources_.size()) return;
  MixSettings mix = mix_;
  for (int i = 0; i < mix.weights[block].size(); ++i) mix.weights[block][i] = (i == source) ? 1.0 : 0.0;
  setMix(mix, tr("Use %1 for block %2").arg(sources_[source].name).arg(block));
}

void StudioDocument::applyAttributeEdit(const AttributeEdit& attribute) {
  attribute_ = attribute;
  Q_EMIT attributeChanged();
}

void StudioDocument::setAttribute(const AttributeEdit& attribute, const QString& label, int mergeKey) {
  if (attribute == attribute_) return;
  undo_.push(new AttributeCommand(this, attribute_, attribute, label, mergeKey));
}

void StudioDocument::setAttributeStrength(double strength, int mergeKey) {
  if (attribute_.isNull() || strength == attribute_.strength) return;
  AttributeEdit a = attribute_;
  a.strength = strength;
  setAttribute(a, tr("Set %1 strength").arg(a.name.isEmpty() ? tr("attribute") : a.name), mergeKey);
}

void StudioDocument::setAttributeScales(const QString& scales) {
  if (attribute_.isNull() || scales == attribute_.scales) return;
  AttributeEdit a = attribute_;
  a.scales = scales;
  setAttribute(a, tr("Restrict %1 to blocks %2").arg(a.name.isEmpty() ? tr("attribute") : a.name, scales));
}

void StudioDocument::removeAttribute() {
  if (attribute_.isNull()) return;
  setAttribute({}, tr("Remove %1").arg(attribute_.name.isEmpty() ? tr("attribute") : attribute_.name));
}

double StudioDocument::rangeWeight(Range range, int source) const {
  auto [first, last] = rangeBlocks(range, layout_);
  if (first > last || first >= mix_.weights.size() || source >= mix_.weights[first].size()) return 0;
  return mix_.weights[first][source];
}

void StudioDocument::setMorph(const MorphSettings& morph) {
  if (morph == morph_) return;
  morph_ = morph;
  Q_EMIT morphChanged();
}

QJsonObject StudioDocument::editorState() const {
  QJsonArray sources;
  for (const auto& s : sources_) {
    QJsonArray latent;
    for (float v : s.latent) latent.append(double(v));
    sources.append(QJsonObject{{"path", s.path},
                               {"name", s.name},
                               {"note", s.note},
                               {"from_photo", s.fromPhoto},
                               {"face", s.face},
                               {"latent", latent},
                               {"aligned_png", imageToBase64(s.aligned)},
                               {"reconstruction_png", imageToBase64(s.reconstruction)}});
  }
  QJsonArray blocks;
  for (const auto& row : mix_.weights) {
    QJsonArray r;
    for (double w : row) r.append(w);
    blocks.append(r);
  }
  QJsonObject root{{"format", "automod-studio-project"}, {"version", 2}, {"sources", sources},
                   {"mix", QJsonObject{{"block_weights", blocks}}},
                   {"morph", QJsonObject{{"a", morph_.a},
                                         {"b", morph_.b},
                                         {"moving", int(morph_.moving)},
                                         {"t", morph_.t},
                                         {"frames", morph_.frames},
                                         {"fps", morph_.fps}}}};
  if (!attribute_.isNull()) root.insert("attribute", attributeToJson(attribute_));
  return root;
}

bool StudioDocument::load(const QString& path, QString* error) {
  QFile file(path);
  if (!file.open(QIODevice::ReadOnly)) {
    if (error) *error = file.errorString();
    return false;
  }
  const QByteArray text = file.readAll();
  try {
    checkJsonLimits(std::string_view(text.constData(), size_t(text.size())), "the project");
  } catch (const Error& e) {
    if (error) *error = QString::fromStdString(e.what());
    return false;
  }
  QJsonParseError parse;
  const auto doc = QJsonDocument::fromJson(text, &parse);
  if (doc.isNull() || !doc.isObject()) {
    if (error) *error = tr("not a project file (%1)").arg(parse.errorString());
    return false;
  }
  auto root = doc.object();
  if (root.value("kind").toString() == "automod-recipe") {
    // A project is a recipe with the editor's section; a recipe without one was not saved by the
    // editor (apply it with `automod apply` instead).
    if (!root.value("editor").isObject()) {
      if (error) *error = tr("this recipe was not saved by the editor (run it with automod apply)");
      return false;
    }
    root = root.value("editor").toObject();
  }
  if (!restoreEditorState(root, error)) return false;
  file_path_ = path;
  return true;
}

bool StudioDocument::restoreEditorState(const QJsonObject& root, QString* error) {
  if (root.value("format").toString() != "automod-studio-project") {
    if (error) *error = tr("not an Automodulator Studio project");
    return false;
  }
  QVector<Source> sources;
  for (const auto& v : root.value("sources").toArray()) {
    const auto o = v.toObject();
    Source s;
    s.path = o.value("path").toString();
    s.name = o.value("name").toString();
    s.note = o.value("note").toString();
    s.fromPhoto = o.value("from_photo").toBool(false);
    s.face = o.value("face").toInt(-1);
    for (const auto& x : o.value("latent").toArray()) s.latent.push_back(float(x.toDouble()));
    s.aligned = imageFromBase64(o.value("aligned_png"));
    s.reconstruction = imageFromBase64(o.value("reconstruction_png"));
    if (s.latent.isEmpty()) {
      if (error) *error = tr("source %1 has no latent").arg(s.name);
      return false;
    }
    sources.push_back(s);
  }
  MixSettings mix;
  for (const auto& r : root.value("mix").toObject().value("block_weights").toArray()) {
    QVector<double> row;
    for (const auto& w : r.toArray()) row.push_back(w.toDouble());
    mix.weights.push_back(row);
  }
  AttributeEdit attribute;
  if (root.contains("attribute")) {
    attribute = attributeFromJson(root.value("attribute").toObject());
    const int dim = sources.isEmpty() ? attribute.vector.size() : sources.front().latent.size();
    if (attribute.vector.size() != dim) {
      if (error) *error = tr("the attribute has %1 entries but the latents have %2").arg(attribute.vector.size()).arg(dim);
      return false;
    }
  }
  // Morph settings were added with the second format; first-format projects keep the defaults.
  MorphSettings morph;
  if (root.contains("morph")) {
    const auto m = root.value("morph").toObject();
    morph.a = m.value("a").toInt(0);
    morph.b = m.value("b").toInt(1);
    morph.moving = Ranges::fromInt(m.value("moving").toInt(int(allRanges())) & int(allRanges()));
    morph.t = std::clamp(m.value("t").toDouble(0.0), 0.0, 1.0);
    morph.frames = std::clamp(m.value("frames").toInt(48), 2, 100000);
    morph.fps = std::clamp(m.value("fps").toDouble(24.0), 1.0, 240.0);
  }
  undo_.clear();
  modified_outside_undo_ = false;
  sources_ = sources;
  mix_ = normalisedShape(mix);
  attribute_ = attribute;
  morph_ = morph;
  Q_EMIT sourcesChanged();
  Q_EMIT mixChanged();
  Q_EMIT attributeChanged();
  Q_EMIT morphChanged();
  return true;
}

void StudioDocument::setSaved() {
  modified_outside_undo_ = false;
  undo_.setClean();
}

void StudioDocument::clear() {
  undo_.clear();
  modified_outside_undo_ = false;
  sources_.clear();
  mix_ = normalisedShape({});
  attribute_ = {};
  morph_ = {};
  file_path_.clear();
  Q_EMIT sourcesChanged();
  Q_EMIT mixChanged();
  Q_EMIT attributeChanged();
  Q_EMIT morphChanged();
}

}  // namespace automod::ui
