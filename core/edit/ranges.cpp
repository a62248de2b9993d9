#include "core/edit/ranges.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "core/util/error.h"

namespace automod {
namespace {

std::string blocksText(int num_blocks) {
  return "the model has blocks 0-" + std::to_string(num_blocks - 1) + " (" + std::to_string(4 << (num_blocks - 1)) +
         " px)";
}

BlockRange named(const std::string& name, int first, int last, int num_blocks) {
  BlockRange r{first, std::min(last, num_blocks - 1)};
  if (r.first > r.last)
    throw Error("scale '" + name + "' needs block " + std::to_string(first) + " but " + blocksText(num_blocks));
  return r;
}

int parseBlock(const std::string& s, const std::string& whole) {
  if (s.empty() || !std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); }) || s.size() > 3)
    throw Error("bad scale '" + whole + "': use coarse, intermediate, fine, a block K or a range A-B");
  return std::stoi(s);
}

}  // namespace

std::string BlockRange::toString() const {
  return first == last ? std::to_string(first) : std::to_string(first) + "-" + std::to_string(last);
}

BlockRange coarseRange(int num_blocks) { return named("coarse", 0, 1, num_blocks); }
BlockRange intermediateRange(int num_blocks) { return named("intermediate", 2, 3, num_blocks); }
BlockRange fineRange(int num_blocks) { return named("fine", 4, num_blocks - 1, num_blocks); }

std::vector<std::pair<std::string, BlockRange>> namedRanges(int num_blocks) {
  std::vector<std::pair<std::string, BlockRange>> out{{"coarse", coarseRange(num_blocks)}};
  if (num_blocks > 2) out.emplace_back("intermediate", intermediateRange(num_blocks));
  if (num_blocks > 4) out.emplace_back("fine", fineRange(num_blocks));
  return out;
}

BlockRange parseBlockRange(const std::string& raw, int num_blocks) {
  if (num_blocks < 1) throw Error("the model has no decoder blocks");
  std::string text;
  for (char c : raw)
    if (!std::isspace(static_cast<unsigned char>(c))) text += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (text == "coarse") return coarseRange(num_blocks);
  if (text == "intermediate" || text == "middle") return intermediateRange(num_blocks);
  if (text == "fine") return fineRange(num_blocks);
  if (text == "all") return {0, num_blocks - 1};
  BlockRange r;
  const auto dash = text.find('-');
  if (dash == std::string::npos) {
    r.first = r.last = parseBlock(text, raw);
  } else {
    r.first = parseBlock(text.substr(0, dash), raw);
    r.last = parseBlock(text.substr(dash + 1), raw);
  }
  if (r.first > r.last) throw Error("bad scale '" + raw + "': the range is reversed");
  if (r.last >= num_blocks) throw Error("scale '" + raw + "' is out of range: " + blocksText(num_blocks));
  return r;
}

std::vector<BlockRange> parseBlockRanges(const std::string& text, int num_blocks) {
  std::vector<BlockRange> out;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ','))
    if (!part.empty()) out.push_back(parseBlockRange(part, num_blocks));
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
