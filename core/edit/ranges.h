#pragma once
// Scale ranges (SPEC §2, paper Fig. 4): which decoder blocks an edit touches. coarse = blocks 0–1
// (4–8 px), intermediate = 2–3 (16–32 px), fine = 4..B−1 (64 px and up), or any block "K" or range "A-B".
#include <string>
#include <utility>
#include <vector>

namespace automod {

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

/// Parses "coarse", "intermediate", "fine", "K" or "A-B" for a model with `num_blocks` blocks.
/// Named scales are clipped to the model's blocks; an explicit block outside 0..num_blocks−1, a
/// reversed range, or a named scale the model does not have (fine on a 32 px model) throws
/// automod::Error saying which blocks exist.
BlockRange parseBlockRange(const std::string& text, int num_blocks);
/// A comma-separated list of ranges ("coarse,fine", "0-1,4").
std::vector<BlockRange> parseBlockRanges(const std::string& text, int num_blocks);
/// Whether `block` is in any of the ranges.
bool rangesContain(const std::vector<BlockRange>& ranges, int block);
/// "0-1,4-5".
std::string rangesToString(const std::vector<BlockRange>& ranges);

/// The paper's three presets, clipped to a model with `num_blocks` blocks.
BlockRange coarseRange(int num_blocks);
BlockRange intermediateRange(int num_blocks);
BlockRange fineRange(int num_blocks);
/// The named scales a model with `num_blocks` blocks has, coarse to fine ("fine" only from 5 blocks).
std::vector<std::pair<std::string, BlockRange>> namedRanges(int num_blocks);

}  // namespace automod
