#pragma once
// Plain values that travel between the inference worker, the document and the widgets. No LibTorch
// here: latents are stored as float vectors so widget TUs never include torch.
#include <QFlags>
#include <QImage>
#include <QMetaType>
#include <QString>
#include <QVector>

#include <limits>

#include "core/edit/ranges.h"

namespace automod::ui {

/// One photo brought into the editor: prepared (aligned or center-cropped), encoded, reconstructed.
struct Source {
  QString path;
  QString name;
  QImage aligned;
  QImage reconstruction;
  QVector<float> latent;
  QString note;
  /// Encoded from the photo at `path` (not a pasted image or a kept sample): which face (index,
  /// largest first), or −1 when the photo was centre-cropped. A project's recipe names the photo
  /// then, and the code otherwise.
  bool fromPhoto = false;
  int face = -1;
  /// How well the model reconstructs the aligned photo: PSNR in dB and SSIM (NaN when unknown, e.g.
  /// a source from a project).
  double psnr = std::numeric_limits<double>::quiet_NaN();
  double ssim = std::numeric_limits<double>::quiet_NaN();
  bool operator==(const Source& o) const { return path == o.path && latent == o.latent; }
};

/// The mix: weights[b][i] is source i's blend weight in decoder block b. A block's latent is the
/// normalised weighted sum of its sources' latents (docs/design.md §4).
struct MixSettings {
  QVector<QVector<double>> weights;
  bool operator==(const MixSettings&) const = default;
};

/// The three scale ranges the Mix tab offers: core's named scales (core/edit/ranges.h).
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

/// What the worker encodes: a photo file.
struct EncodeResult {
  quint64 id = 0;
  Source source;
  QString error;  ///< non-empty when the photo could not be used; the message says why
  double ms = 0;
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

/// A gallery of conditional samples: locked ranges follow the mix, the others are drawn at random.
struct SampleResult {
  quint64 request = 0;
  quint64 seed = 0;
  QVector<QImage> images;
  QString error;
};

}  // namespace automod::ui

Q_DECLARE_METATYPE(automod::ui::SampleResult)
Q_DECLARE_METATYPE(automod::ui::EncodeResult)
Q_DECLARE_METATYPE(automod::ui::DecodeResult)
