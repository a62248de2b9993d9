#pragma once
// Plain values that travel between the inference worker, the document and the widgets. No LibTorch
// here: latents are stored as float vectors so widget TUs never include torch.
#include <QFlags>
#include <QImage>
#include <QMetaType>
#include <QString>
#include <QVector>

#include <limits>

#include "core/model/ranges.h"

namespace automod::ui {

/// What the widgets show of one source of the document (core's EditSource, core/edit/edit_state.h):
/// plain Qt values, converted once when the document changes.
struct Source {
  /// core's EditSource::id: stable while the source is in the document.
  quint64 id = 0;
  /// The photo file ("" for a pasted image, a kept sample or a project's code).
  QString path;
  QString name;
  QImage aligned;
  QImage reconstruction;
  /// The code of its first block ([D]): the encoder's code unless refined or kept from a gallery.
  QVector<float> latent;
  QString note;
  /// Encoded from the photo at `path`: which face (index, largest first), or −1 when the photo was
  /// centre-cropped. A project's recipe names the photo then, and the code otherwise.
  bool fromPhoto = false;
  int face = -1;
  /// The codes were refined (one per block; core/edit/refine): how many steps.
  int refineSteps = 0;
  /// False while the current model has not encoded it yet (after a model change).
  bool encoded = true;
  /// How well the model reconstructs the prepared photo: PSNR in dB and SSIM (NaN when unknown).
  double psnr = std::numeric_limits<double>::quiet_NaN();
  double ssim = std::numeric_limits<double>::quiet_NaN();
  bool operator==(const Source& o) const { return id == o.id && path == o.path && latent == o.latent; }
};

/// The mix: weights[b][i] is source i's blend weight in decoder block b. A block's latent is the
/// normalised weighted sum of its sources' latents (docs/design.md §4).
struct MixSettings {
  QVector<QVector<double>> weights;
  bool operator==(const MixSettings&) const = default;
};

/// The three scale ranges the Mix tab offers: core's named scales (core/model/ranges.h).
using Range = automod::Scale;
/// Blocks [first, last] of a range in a model with these blocks (empty, first > last, when the
/// model has none).
inline std::pair<int, int> rangeBlocks(Range r, const BlockLayout& layout) {
  if (!hasScale(r, layout)) return {1, 0};
  const auto range = scaleRange(r, layout);
  return {range.first, range.last};
}
/// Whether a model with these blocks has any block of the range (true while no model is loaded).
inline bool rangeInModel(Range r, const BlockLayout& layout) { return layout.size() == 0 || hasScale(r, layout); }

/// A set of named scales (which ranges a morph moves, a gallery locks, an attribute touches).
enum class RangeFlag { Coarse = 1, Intermediate = 2, Fine = 4 };
Q_DECLARE_FLAGS(Ranges, RangeFlag)
Q_DECLARE_OPERATORS_FOR_FLAGS(Ranges)
inline RangeFlag flagOf(Range r) { return RangeFlag(1 << int(r)); }
inline Ranges allRanges() { return RangeFlag::Coarse | RangeFlag::Intermediate | RangeFlag::Fine; }
/// The blocks of the ranges in `set` that the model has.
inline std::vector<BlockRange> blockRanges(Ranges set, const BlockLayout& layout) {
  std::vector<BlockRange> out;
  for (Range r : allScales())
    if (set.testFlag(flagOf(r)) && hasScale(r, layout)) out.push_back(scaleRange(r, layout));
  return out;
}

/// The Morph tab's settings, kept in the project: between sources `a` and `b`, the `moving` ranges
/// (the others stay `a`), at `t`; a video of `frames` frames at `fps`.
struct MorphSettings {
  int a = 0, b = 1;
  Ranges moving = allRanges();
  double t = 0.0;
  int frames = 48;
  double fps = 24.0;
  bool operator==(const MorphSettings&) const = default;
};

/// A decoded mix. `final` is false for the coarse-to-fine preview that comes first.
struct DecodeResult {
  quint64 request = 0;
  QImage image;
  bool final = true;
  int firstBlock = 0;  ///< the first block recomputed (incremental decoding reuses the rest)
  double ms = 0;
  QString error;
};

}  // namespace automod::ui

Q_DECLARE_METATYPE(automod::ui::DecodeResult)
