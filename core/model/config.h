#pragma once
// The shape of an automodulator: resolution, image channels, latent size and the channel width of
// every block (docs/design.md §2). One table drives paper-size and small CPU models alike.
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
  /// An extra decoder block at 8×8 after block 1 (flip-invariance training, paper Sec. 3.3): the
  /// decoder then has one more block than there are resolutions, and block indices from 2 up are
  /// shifted by one (block 2 is the extra 8×8 block, block 3 works at 16 px, ...). Needs ≥ 8 px.
  bool extra_8x8_block = false;
  /// The AdaIN style linears and the toRGB convolutions as plain layers with the reference code's
  /// initialisation (Xavier-normal weights; PyTorch's default for the 1×1 toRGB), not as equalised-
  /// learning-rate layers. Equalised, a modulation weight moves 1/√(fan_in/2) as fast under Adam,
  /// and the decoder learns to follow its latent that much more slowly (docs/design.md §2 calls the style map a
  /// plain Linear; only the convolutions are equalised). New training presets set it; files without
  /// the field load as before (equalised).
  bool plain_modulation = false;

  // The authors' architecture (their pioneer/model.py; ../shared/reference/README.md and
  // docs/reference-architecture.md). Each option is off by default, so files written before it load
  // unchanged; ModelConfig::reference() sets them all.

  /// Encoder input width at each resolution level (what fromRGB outputs at 4·2^b); empty: the
  /// decoder's `widths`. The authors' encoder is narrower than their decoder from 64 px up.
  std::vector<int> encoder_widths;
  /// An encoder block changes width in its first convolution (the authors') instead of its second.
  bool encoder_widen_first = false;
  /// fromRGB as a plain 1×1 convolution (the authors') instead of a spectrally normalised one.
  bool plain_from_rgb = false;
  /// Each equalised decoder convolution has a learned scalar gain: weight · √(2/fan_in) · gain.
  bool learned_gain = false;
  /// AdaIN divides by the unbiased standard deviation (N − 1), as the authors' AdaNorm does
  /// (which also has no ε: adain_eps 0).
  bool adain_unbiased = false;
  /// Layer noise drawn per element [N, C, H, W] (the authors') instead of one map per sample
  /// shared by all channels.
  bool noise_per_element = false;
  /// Spectral norm as the authors compute it: every forward runs one power iteration from the
  /// stored u (in eval mode too, without storing the new u), with gradients through u and v. Off:
  /// eval mode uses the stored u and v as they are; training updates them outside the graph.
  bool sn_power_iteration_in_graph = false;

  /// Number of resolution levels 4, 8, ..., resolution (= encoder blocks = decoder blocks without
  /// the extra block). "Stage" s is such a level.
  int numBlocks() const;
  static int blockResolution(int block) { return 4 << block; }
  /// Decoder blocks in use at stage s: s + 1, plus the extra block from stage 1 on.
  int blocksAtStage(int stage) const { return stage + 1 + (extra_8x8_block && stage >= 1 ? 1 : 0); }
  /// All decoder blocks (= blocksAtStage(numBlocks() − 1)).
  int decoderBlocks() const { return blocksAtStage(numBlocks() - 1); }
  /// The stage (resolution level) of decoder block b.
  int stageOfBlock(int block) const { return extra_8x8_block && block >= 2 ? block - 1 : block; }
  /// Output resolution of decoder block b.
  int decoderBlockResolution(int block) const { return blockResolution(stageOfBlock(block)); }
  /// The block whose output has this resolution; throws for a resolution that is not 4·2^b.
  static int blockForResolution(int resolution);

  /// Builds a config from a named width table ("paper", "paper-small", "cpu-128", "cpu-64", "cpu-32"),
  /// or the authors' whole architecture ("reference", "reference-small": see reference()).
  static ModelConfig fromTable(const std::string& table, int resolution, int image_channels = 3,
                               int latent_dim = 512);
  static std::vector<std::string> tableNames();
  /// The authors' architecture for `latent_dim` (their nz: 512 in the released models) at
  /// `resolution`: decoder widths nz up to 32 px, then nz/2·H, nz/4·H, ... with H = 2 ("default")
  /// or 1 ("small", their --small_darch, CelebA-HQ); encoder widths nz up to 32 px, then nz/2,
  /// nz/4, ...; every reference option above on; adain_eps 0.
  static ModelConfig reference(int resolution, int latent_dim = 512, bool small = false, int image_channels = 3);
  /// Encoder input width at resolution level b (encoder_widths, or widths when that is empty).
  int encoderWidth(int b) const { return encoder_widths.empty() ? widths.at(b) : encoder_widths.at(b); }

  /// Throws automod::Error naming the bad field.
  void validate() const;
  nlohmann::json toJson() const;
  static ModelConfig fromJson(const nlohmann::json& j);
  bool operator==(const ModelConfig&) const = default;
};

}  // namespace automod
