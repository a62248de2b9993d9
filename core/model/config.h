#pragma once
// The shape of an automodulator: resolution, image channels, latent size and the channel width of
// every block (SPEC §2). One table drives paper-size and small CPU models alike.
#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

namespace automod {

struct ModelConfig {
  /// Final (largest) resolution, a power of two from 4 to 1024. Blocks b = 0..B-1 work at 4·2^b.
  int resolution = 64;
  /// 3 for RGB data, 1 for grey data (e.g. Fashion-MNIST).
  int image_channels = 3;
  /// Size of the unit-norm latent.
  int latent_dim = 512;
  /// widths[b]: channels of decoder block b's output = encoder block input at the same resolution.
  std::vector<int> widths;
  /// A learned decoder input instead of the fixed tensor of ones (off in the reference).
  bool learned_input = false;
  /// AdaIN's ε (the reference has none and can produce NaN on flat feature maps).
  double adain_eps = 1e-8;
  /// The name of the width table the widths came from, for display only.
  std::string width_table = "custom";

  int numBlocks() const;
  static int blockResolution(int block) { return 4 << block; }
  /// The block whose output has this resolution; throws for a resolution that is not 4·2^b.
  static int blockForResolution(int resolution);

  /// Builds a config from a named width table ("paper", "paper-small", "cpu-128", "cpu-64").
  static ModelConfig fromTable(const std::string& table, int resolution, int image_channels = 3,
                               int latent_dim = 512);
  static std::vector<std::string> tableNames();

  /// Throws automod::Error naming the bad field.
  void validate() const;
  nlohmann::json toJson() const;
  static ModelConfig fromJson(const nlohmann::json& j);
  bool operator==(const ModelConfig&) const = default;
};

}  // namespace automod
