#include "core/model/ranges.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "core/model/automodulator.h"
#include "core/util/error.h"

namespace automod {
namespace {

std::string blocksText(const BlockLayout& layout) {
  if (layout.size() == 0) return "the model has no blocks";
  return "the model has blocks 0-" + std::to_string(layout.size() - 1) + " (" +
         std::to_string(layout.resolutions.back()) + " px)";
}

/// The resolutions a named scale covers.
std::pair<int, int> scaleResolutions(Scale scale) {
  switch (scale) {
    case Scale::Coarse: return {4, 8};
    case Scale::Intermediate: return {16, 32};
    case Scale::Fine: default: return {64, 1 << 20};
  }
}

int parseBlock(const std::string& s, const std::string& whole) {
  if (s.empty() || !std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); }) || s.size() > 3)
    throw Error("bad scale '" + whole + "': use coarse, intermediate, fine, a block K or a range A-B");
  return std::stoi(s);
}

}  // namespace

BlockLayout BlockLayout::plain(int num_blocks) {
  BlockLayout l;
  for (int b = 0; b < num_blocks; ++b) l.resolutions.push_back(4 << b);
  return l;
}

BlockLayout BlockLayout::of(const ModelConfig& config, int stage) {
  BlockLayout l;
  for (int b = 0; b < config.blocksAtStage(stage); ++b) l.resolutions.push_back(config.decoderBlockResolution(b));
  return l;
}

BlockLayout BlockLayout::of(const Automodulator& model) { return of(model.config(), model.stage()); }

BlockLayout BlockLayout::forResolution(int resolution, bool extra_8x8_block) {
  ModelConfig c;
  c.resolution = resolution;
  c.extra_8x8_block = extra_8x8_block && resolution >= 8;
  return of(c, c.numBlocks() - 1);
}

const char* scaleName(Scale scale) {
  switch (scale) {
    case Scale::Coarse: return "coarse";
    case Scale::Intermediate: return "intermediate";
    case Scale::Fine: default: return "fine";
  }
}

const std::vector<Scale>& allScales() {
  static const std::vector<Scale> all{Scale::Coarse, Scale::Intermediate, Scale::Fine};
  return all;
}

std::string BlockRange::toString() const {
  return first == last ? std::to_string(first) : std::to_string(first) + "-" + std::to_string(last);
}

bool hasScale(Scale scale, const BlockLayout& layout) {
  // Plain variables, not a structured binding: the lambda captures them (clang before 16 cannot
  // capture a binding, and the fuzz build uses clang 14).
  const auto lo_hi = scaleResolutions(scale);
  const int lo = lo_hi.first, hi = lo_hi.second;
  return std::any_of(layout.resolutions.begin(), layout.resolutions.end(), [&](int r) { return r >= lo && r <= hi; });
}

BlockRange scaleRange(Scale scale, const BlockLayout& layout) {
  const auto [lo, hi] = scaleResolutions(scale);
  int first = -1, last = -1;
  for (int b = 0; b < layout.size(); ++b)
    if (layout.resolutions[b] >= lo && layout.resolutions[b] <= hi) {
      if (first < 0) first = b;
      last = b;
    }
  if (first < 0)
    throw Error("scale '" + std::string(scaleName(scale)) + "' needs a block at " + std::to_string(lo) +
                (scale == Scale::Fine ? " px or more" : "-" + std::to_string(hi) + " px") + " but " + blocksText(layout));
  return {first, last};
}

BlockRange coarseRange(const BlockLayout& layout) { return scaleRange(Scale::Coarse, layout); }
BlockRange intermediateRange(const BlockLayout& layout) { return scaleRange(Scale::Intermediate, layout); }
BlockRange fineRange(const BlockLayout& layout) { return scaleRange(Scale::Fine, layout); }

std::vector<std::pair<std::string, BlockRange>> namedRanges(const BlockLayout& layout) {
  std::vector<std::pair<std::string, BlockRange>> out;
  for (Scale s : allScales())
    if (hasScale(s, layout)) out.emplace_back(scaleName(s), scaleRange(s, layout));
  return out;
}

BlockRange parseBlockRange(const std::string& raw, const BlockLayout& layout) {
  if (layout.size() < 1) throw Error("the model has no decoder blocks");
  std::string text;
  for (char c : raw)
    if (!std::isspace(static_cast<unsigned char>(c))) text += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (text == "coarse") return coarseRange(layout);
  if (text == "intermediate" || text == "middle") return intermediateRange(layout);
  if (text == "fine") return fineRange(layout);
  if (text == "all") return {0, layout.size() - 1};
  BlockRange r;
  const auto dash = text.find('-');
  if (dash == std::string::npos) {
    r.first = r.last = parseBlock(text, raw);
  } else {
    r.first = parseBlock(text.substr(0, dash), raw);
    r.last = parseBlock(text.substr(dash + 1), raw);
  }
  if (r.first > r.last) throw Error("bad scale '" + raw + "': the range is reversed");
  if (r.last >= layout.size()) throw Error("scale '" + raw + "' is out of range: " + blocksText(layout));
  return r;
}

std::vector<BlockRange> parseBlockRanges(const std::string& text, const BlockLayout& layout) {
  std::vector<BlockRange> out;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ','))
    if (!part.empty()) out.push_back(parseBlockRange(part, layout));
  if (out.empty()) throw Error("no scale given: use coarse, intermediate, fine, a block K or a range A-B");
  return out;
}

bool rangesContain(const std::vector<BlockRange>& ranges, int block) {
  return std::any_of(ranges.begin(), ranges.end(), [&](const BlockRange& r) { return r.contains(block); });
}

std::string rangesToString(const std::vector<BlockRange>& ranges) {
  std::string s;
  for (auto& r : ranges) s += (s.empty() ? "" : ",") + r.toString();
  return s;
}

}  // namespace automod
