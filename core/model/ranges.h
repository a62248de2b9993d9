#pragma once
// Scale ranges (docs/design.md §2, paper Fig. 4): which decoder blocks an edit touches. The one table of named
// scales: coarse = the blocks that work at 4–8 px, intermediate = 16–32 px, fine = 64 px and up (so
// a flip-invariance model's extra 8×8 block is coarse); or any block "K" or range "A-B". The
// authors' own editing code (zbuilder) names blocks 0–1 "hi", 2–4 "mid" and 5 up "lo": the same
// split except block 4 (64 px), which they count as middle and the paper's Fig. 4 as fine.
#include <string>
#include <utility>
#include <vector>

#include "core/model/config.h"

namespace automod {

class Automodulator;

/// The output resolution of each decoder block a model uses at its stage (4, 8, 16, ...; a
/// flip-invariance model has two 8 px blocks). Named scales are defined on it.
struct BlockLayout {
  std::vector<int> resolutions;

  int size() const { return static_cast<int>(resolutions.size()); }
  /// A model without the extra block, with `num_blocks` blocks (4, 8, 16, ... px).
  static BlockLayout plain(int num_blocks);
  /// The blocks of `config` in use at `stage`.
  static BlockLayout of(const ModelConfig& config, int stage);
  /// The blocks `model` uses now.
  static BlockLayout of(const Automodulator& model);
  /// Blocks up to `resolution`, with or without the extra 8×8 block.
  static BlockLayout forResolution(int resolution, bool extra_8x8_block);
  bool operator==(const BlockLayout&) const = default;
};

/// The paper's three named scales.
enum class Scale { Coarse, Intermediate, Fine };
/// "coarse", "intermediate", "fine".
const char* scaleName(Scale scale);
/// Coarse, intermediate, fine.
const std::vector<Scale>& allScales();

struct BlockRange {
  /// First and last block, inclusive.
  int first = 0;
  int last = 0;

  bool contains(int block) const { return block >= first && block <= last; }
  int size() const { return last - first + 1; }
  /// "A-B" (or "K" for a single block): the text parseBlockRange reads back.
  std::string toString() const;
  bool operator==(const BlockRange&) const = default;
};

/// Parses "coarse", "intermediate", "fine", "all", "K" or "A-B" for a model with these blocks. An
/// explicit block outside the model, a reversed range, or a named scale the model does not have
/// (fine on a 32 px model) throws automod::Error saying which blocks exist.
BlockRange parseBlockRange(const std::string& text, const BlockLayout& layout);
/// A comma-separated list of ranges ("coarse,fine", "0-1,4").
std::vector<BlockRange> parseBlockRanges(const std::string& text, const BlockLayout& layout);
/// Whether `block` is in any of the ranges.
bool rangesContain(const std::vector<BlockRange>& ranges, int block);
/// "0-1,4-5".
std::string rangesToString(const std::vector<BlockRange>& ranges);

/// Whether the model has any block of the scale (no fine blocks below 64 px).
bool hasScale(Scale scale, const BlockLayout& layout);
/// The blocks of a named scale; throws automod::Error when the model has none (hasScale).
BlockRange scaleRange(Scale scale, const BlockLayout& layout);
BlockRange coarseRange(const BlockLayout& layout);
BlockRange intermediateRange(const BlockLayout& layout);
BlockRange fineRange(const BlockLayout& layout);
/// The named scales the model has, coarse to fine.
std::vector<std::pair<std::string, BlockRange>> namedRanges(const BlockLayout& layout);

}  // namespace automod
