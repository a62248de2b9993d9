#include <torch/torch.h>

#include "ui/document.h"

#include <algorithm>

#include "core/edit/edit_state.h"
#include "ui/tensor_image.h"

namespace automod::ui {
namespace {

/// One user action: the whole state before and after it (the states share their tensors, so a step
/// costs a few vectors, not a copy of any code or picture).
class StateCommand : public QUndoCommand {
 public:
  StateCommand(StudioDocument* doc, EditState before, EditState after, const QString& label, int key)
      : QUndoCommand(label), doc_(doc), before_(std::move(before)), after_(std::move(after)), key_(key) {}
  void undo() override { doc_->apply(before_); }
  void redo() override { doc_->apply(after_); }
  int id() const override { return key_ < 0 ? -1 : 1000 + key_; }
  bool mergeWith(const QUndoCommand* other) override {
    auto* o = dynamic_cast<const StateCommand*>(other);
    if (!o || o->key_ != key_) return false;
    after_ = o->after_;
    return true;
  }

 private:
  StudioDocument* doc_;
  EditState before_, after_;
  int key_;
};

bool sameSources(const EditState& a, const EditState& b) {
  if (a.sources.size() != b.sources.size()) return false;
  for (size_t i = 0; i < a.sources.size(); ++i) {
    const auto &x = a.sources[i], &y = b.sources[i];
    if (x.id != y.id || x.name != y.name || x.note != y.note || x.codes.size() != y.codes.size() ||
        x.picture.unsafeGetTensorImpl() != y.picture.unsafeGetTensorImpl() ||
        x.reconstruction.unsafeGetTensorImpl() != y.reconstruction.unsafeGetTensorImpl() || x.refine != y.refine)
      return false;
    for (int k = 0; k < x.codes.size(); ++k)
      if (x.codes[k].unsafeGetTensorImpl() != y.codes[k].unsafeGetTensorImpl()) return false;
  }
  return true;
}

const char* const kRangeNames[] = {QT_TRANSLATE_NOOP("StudioDocument", "coarse"),
                                   QT_TRANSLATE_NOOP("StudioDocument", "intermediate"),
                                   QT_TRANSLATE_NOOP("StudioDocument", "fine")};

}  // namespace

StudioDocument::StudioDocument(QObject* parent) : QObject(parent), state_(std::make_unique<EditState>()) {}
StudioDocument::~StudioDocument() = default;

const BlockLayout& StudioDocument::layout() const { return state_->model.layout; }

int StudioDocument::indexOf(quint64 id) const { return state_->indexOf(id); }

void StudioDocument::refreshViews(bool sources, bool mix, bool attribute, bool morph) {
  if (sources) {
    sources_.clear();
    for (const auto& s : state_->sources) sources_.push_back(toSourceView(s));
  }
  if (mix) {
    mix_.weights.clear();
    for (const auto& row : state_->weights) mix_.weights.push_back(QVector<double>(row.begin(), row.end()));
  }
  if (attribute) attribute_ = state_->attribute ? toAttributeEdit(*state_->attribute) : AttributeEdit{};
  if (morph) morph_ = toMorphSettings(state_->morph, layout());
}

void StudioDocument::apply(const EditState& target) {
  const EditState before = *state_;
  // An undo step taken while the model was still encoding its sources (after a model change) holds
  // them without codes: what arrived since (updateSource, not an undo step) stays.
  EditState after = target;
  for (auto& s : after.sources) {
    if (s.hasCodes()) continue;
    const int i = before.indexOf(s.id);
    if (i >= 0 && before.sources[static_cast<size_t>(i)].hasCodes()) s = before.sources[static_cast<size_t>(i)];
  }
  if (after.attribute && !after.attribute->vector.vector.defined() && before.attribute &&
      before.attribute->vector.vector.defined() && before.attribute->vector.name == after.attribute->vector.name) {
    const double strength = after.attribute->strength;
    after.attribute = before.attribute;
    after.attribute->strength = strength;
  }
  *state_ = after;
  const bool sources = !sameSources(before, after) || !(before.model.layout == after.model.layout);
  const bool mix = sources || before.weights != after.weights;
  const bool attribute =
      before.attribute.has_value() != after.attribute.has_value() ||
      (after.attribute && (after.attribute->strength != before.attribute->strength ||
                           after.attribute->vector.vector.unsafeGetTensorImpl() !=
                               before.attribute->vector.vector.unsafeGetTensorImpl() ||
                           after.attribute->vector.ranges != before.attribute->vector.ranges ||
                           after.attribute->vector.name != before.attribute->vector.name));
  const bool morph = !(before.morph == after.morph) || sources;
  refreshViews(sources, mix, attribute, morph);
  if (sources) Q_EMIT sourcesChanged();
  if (mix) Q_EMIT mixChanged();
  if (attribute) Q_EMIT attributeChanged();
  if (morph) Q_EMIT morphChanged();
  if (sources || mix || attribute) Q_EMIT stateChanged();
}

void StudioDocument::push(const EditState& after, const QString& label, int mergeKey) {
  undo_.push(new StateCommand(this, *state_, after, label, mergeKey));
}

void StudioDocument::addSource(const EditSource& source, const QString& label) {
  EditState after = *state_;
  after.addSource(source);
  push(after, label.isEmpty() ? tr("Add %1").arg(QString::fromStdString(source.name)) : label);
}

void StudioDocument::removeSource(int index) {
  if (index < 0 || index >= sources_.size()) return;
  EditState after = *state_;
  after.removeSource(index);
  push(after, tr("Remove %1").arg(sources_[index].name));
}

void StudioDocument::replaceSource(const EditSource& source, const QString& label) {
  const int i = state_->indexOf(source.id);
  if (i < 0) return;
  EditState after = *state_;
  after.sources[static_cast<size_t>(i)] = source;
  push(after, label);
}

void StudioDocument::updateSource(const EditSource& source) {
  const int i = state_->indexOf(source.id);
  if (i < 0) return;
  EditState after = *state_;
  after.sources[static_cast<size_t>(i)] = source;
  apply(after);
}

void StudioDocument::setMix(const MixSettings& mix, const QString& label, int mergeKey) {
  EditState after = *state_;
  after.weights.clear();
  for (const auto& row : mix.weights) after.weights.emplace_back(row.begin(), row.end());
  after.normaliseWeights();
  if (after.weights == state_->weights) return;
  push(after, label, mergeKey);
}

void StudioDocument::setRangeWeight(Range range, int source, double weight, int mergeKey) {
  if (source < 0 || source >= sources_.size() || !hasScale(range, layout())) return;
  EditState after = *state_;
  after.setWeight(scaleRange(range, layout()), source, weight);
  if (after.weights == state_->weights) return;
  push(after, tr("Blend %1 %2").arg(tr(kRangeNames[int(range)]), sources_[source].name), mergeKey);
}

void StudioDocument::assignRange(Range range, int source) {
  if (source < 0 || source >= sources_.size() || !hasScale(range, layout())) return;
  EditState after = *state_;
  after.assignRange(scaleRange(range, layout()), source);
  if (after.weights == state_->weights) return;
  push(after, tr("Use %1 for the %2 range").arg(sources_[source].name, tr(kRangeNames[int(range)])));
}

void StudioDocument::setBlockSource(int block, int source) {
  if (block < 0 || block >= blocks() || source < 0 || source >= sources_.size()) return;
  EditState after = *state_;
  after.assignRange(BlockRange{block, block}, source);
  if (after.weights == state_->weights) return;
  push(after, tr("Use %1 for block %2").arg(sources_[source].name).arg(block));
}

bool StudioDocument::mixedPerBlock() const { return state_->mixedPerBlock(); }

void StudioDocument::mixByScales() {
  EditState after = *state_;
  after.mixByScales();
  if (after.weights == state_->weights) return;
  push(after, tr("Mix by ranges again"));
}

double StudioDocument::rangeWeight(Range range, int source) const {
  if (!hasScale(range, layout())) return 0.0;
  return state_->weight(scaleRange(range, layout()), source);
}

void StudioDocument::setAttribute(const AttributeEdit& attribute, const QString& label, int mergeKey) {
  if (attribute == attribute_) return;
  EditState after = *state_;
  if (attribute.isNull())
    after.attribute.reset();
  else
    after.attribute = toEditAttribute(attribute, layout());
  push(after, label, mergeKey);
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

void StudioDocument::setMorph(const MorphSettings& morph) {
  if (morph == morph_) return;
  EditState after = *state_;
  after.morph = toEditMorph(morph, layout());
  apply(after);
  morph_ = morph;  // exactly what the tab set (the flags a model without fine blocks cannot show)
}

void StudioDocument::resetState(const EditState& state, bool keepHistory) {
  if (!keepHistory) {
    const bool modified = isModified();
    undo_.clear();
    if (modified) modified_outside_undo_ = true;
  }
  // Every view is rebuilt: the layout may have changed under the same sources.
  *state_ = state;
  refreshViews(true, true, true, true);
  Q_EMIT sourcesChanged();
  Q_EMIT mixChanged();
  Q_EMIT attributeChanged();
  Q_EMIT morphChanged();
  Q_EMIT stateChanged();
}

void StudioDocument::setSaved() {
  modified_outside_undo_ = false;
  undo_.setClean();
}

void StudioDocument::clear() {
  EditState empty;
  empty.model = state_->model;
  undo_.clear();
  modified_outside_undo_ = false;
  file_path_.clear();
  resetState(empty, true);
}

}  // namespace automod::ui
