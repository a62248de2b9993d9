#pragma once
// Conversions between LibTorch tensors and Qt values, and between the document's plain values and
// core's (latents, mix weights, attribute edits). Include only from torch TUs (after torch). No
// computation here: the editing itself is core's (core/edit).
#include <torch/types.h>

#include <QImage>
#include <QVector>

#include <vector>

#include "core/edit/attribute.h"
#include "core/edit/edit_state.h"
#include "core/model/ranges.h"
#include "ui/document.h"

namespace automod::ui {

/// uint8 [H, W, C] (C = 1 or 3) → a deep-copied QImage (Grayscale8 or RGB888).
QImage toQImage(const torch::Tensor& image);
/// A QImage → uint8 [H, W, 3].
torch::Tensor fromQImage(const QImage& image);
QVector<float> toFloatVector(const torch::Tensor& t);
torch::Tensor fromFloatVector(const QVector<float>& v);

/// What the widgets show of a source.
Source toSourceView(const EditSource& source);
/// A PNG of a uint8 [H, W, C] image, base64 (a project's pictures), and back (undefined when unreadable).
std::string toPngBase64(const torch::Tensor& image);
torch::Tensor fromPngBase64(const std::string& text);
/// The document's attribute as core's AttributeVector, its scales resolved for these blocks.
AttributeVector toAttributeVector(const AttributeEdit& edit, const BlockLayout& layout);
/// The same, for the blocks of the model the attribute was built with.
AttributeVector toAttributeVector(const AttributeEdit& edit);
/// Core's attribute edit and back.
EditAttribute toEditAttribute(const AttributeEdit& edit, const BlockLayout& layout);
AttributeEdit toAttributeEdit(const EditAttribute& attribute);
/// The morph: the tab's range flags are core's named scales ("coarse,fine"; empty: every block).
EditMorph toEditMorph(const MorphSettings& morph, const BlockLayout& layout);
MorphSettings toMorphSettings(const EditMorph& morph, const BlockLayout& layout);
/// Named scales as a core scales string ("coarse,fine"), empty for all three.
std::string scalesString(Ranges ranges);
/// The named scales whose blocks `scales` covers entirely in this layout.
Ranges rangesOf(const std::string& scales, const BlockLayout& layout);

}  // namespace automod::ui
