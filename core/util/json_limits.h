#pragma once
// Bounded JSON for every file a user can hand us (model headers, recipes, projects, latent,
// attribute and preset files). nlohmann::json parses iteratively, but copying, comparing, printing
// (dump) and destroying a value recurse once per nesting level, so a file of 100 000 '[' crashed
// `automod info` with a stack overflow. The text is scanned for its nesting depth and size before it
// is parsed (string-aware, one pass, no allocation), so nothing deeper than JsonLimits::max_depth
// ever becomes a value. Errors are automod::Error sentences naming the file: "recipe r.json is not
// valid JSON: nested more than 64 levels deep".
#include <nlohmann/json.hpp>

#include <cstddef>
#include <filesystem>
#include <iosfwd>
#include <string>
#include <string_view>

namespace automod {

struct JsonLimits {
  /// Arrays and objects inside one another; the project's own files use at most 6.
  int max_depth = 64;
  /// Bytes of text; the largest file we write (a project with its images) stays far below.
  size_t max_bytes = size_t(256) << 20;
};

/// Checks `text` against the limits without parsing it; throws automod::Error "WHAT is not valid
/// JSON: nested more than 64 levels deep" or "WHAT is too large: …". Brackets inside strings do not
/// count. Used on its own where another parser (Qt's) reads the text.
void checkJsonLimits(std::string_view text, const std::string& what, const JsonLimits& limits = {});

/// Parses `text` after checkJsonLimits. A syntax error becomes "WHAT is not valid JSON (at line L,
/// column C: …)", with nlohmann's text kept as the error's detail.
nlohmann::json parseJsonLimited(std::string_view text, const std::string& what, const JsonLimits& limits = {});
/// Reads the rest of `in` (at most max_bytes; more is refused without reading it all) and parses it.
nlohmann::json parseJsonLimited(std::istream& in, const std::string& what, const JsonLimits& limits = {});
/// Reads and parses a whole file; "cannot read WHAT: no such file or no permission" when it cannot
/// be opened.
nlohmann::json readJsonFile(const std::filesystem::path& path, const std::string& what, const JsonLimits& limits = {});

/// A whole number from a user's file, checked before it is converted (nlohmann's get<int>() of 1e60 or
/// of 2^40 is undefined behaviour or silently wrong): "WHERE: field 'KEY' must be a whole number from
/// LO to HI" otherwise.
int jsonInt(const nlohmann::json& value, const std::string& where, const std::string& key, int lo, int hi);
/// A number that fits a float (finite and within ±3.4e38), as float; "WHERE: field 'KEY' …" otherwise.
float jsonFloat(const nlohmann::json& value, const std::string& where, const std::string& key);

/// Nesting depth of a value already in memory (0 for a scalar, 1 for [] or {}), counted without
/// recursion, so a value of unknown origin can be checked before dump() recurses through it.
int jsonDepth(const nlohmann::json& j);

}  // namespace automod
