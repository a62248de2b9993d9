#include "core/edit/source_intake.h"

#include <torch/torch.h>

#include <algorithm>
#include <utility>

#include "core/io/image.h"
#include "core/model/automodulator.h"
#include "core/util/error.h"

namespace automod {

namespace fs = std::filesystem;

void storeEncoding(EditSource& source, const EncodedPicture& encoded, int num_blocks) {
  source.picture = encoded.picture;
  source.reconstruction = encoded.reconstruction;
  source.z = encoded.z;
  source.codes = LatentPlan::uniform(encoded.z, num_blocks);
  source.refine = nullptr;
  source.psnr = encoded.psnr;
  source.ssim = encoded.ssim;
}

SourcePicture sourcePicture(const Automodulator& model, const EditSource& source, const PhotoOptions& options) {
  const int size = model.resolution(), channels = static_cast<int>(model.config().image_channels);
  SourcePicture out;
  if (source.fromPhotoFile()) {
    PhotoOptions o = options;
    if (source.spec.face >= 0) o.face = source.spec.face;
    if (source.spec.center_crop) o.align = false;
    o.center_crop_fallback = true;
    auto prepared = preparePhoto(source.spec.path, size, channels, o);
    out.image = prepared.image;
    out.from_file = true;
    out.transform = prepared.transform;
    out.note = prepared.note;
    return out;
  }
  if (!source.picture.defined()) throw Error(source.name + " has neither a photo file nor a picture to encode again");
  // A pasted image or a kept sample: its picture, brought to this model's size.
  torch::Tensor picture = source.picture;
  if (picture.size(0) != size || picture.size(1) != size) picture = resizeImage(picture, size, size);
  if (picture.size(2) != channels)
    picture = channels == 1 ? picture.to(torch::kFloat32).mean(2, true).round().to(torch::kUInt8)
                            : picture.expand({size, size, 3}).contiguous();
  out.image = picture;
  return out;
}

void encodeSourcePicture(Automodulator& model, EditSource& source, const SourcePicture& picture) {
  storeEncoding(source, encodePicture(model, picture.image), model.numBlocks());
  if (picture.from_file) {
    source.transform = picture.transform;
    source.note = picture.note;
  }
}

EditSource sourceFromFaces(Automodulator& model, const std::vector<PreparedPhoto>& faces, int face,
                           const std::string& name, const fs::path& path) {
  const int n = static_cast<int>(faces.size());
  const int k = face < 0 ? 0 : face;
  if (k >= n)
    throw Error(name + " has " + std::to_string(n) + (n == 1 ? " face" : " faces") + "; face " + std::to_string(k + 1) +
                " does not exist");
  const PreparedPhoto& prepared = faces[static_cast<size_t>(k)];
  EditSource source;
  source.name = name;
  std::string note = prepared.note;
  if (n > 1) {
    source.name += " (face " + std::to_string(k + 1) + ")";
    const std::string which = face < 0 ? std::to_string(n) + " faces found; using the largest"
                                       : "face " + std::to_string(k + 1) + " of " + std::to_string(n);
    note = note.empty() ? which : which + "; " + note;
  }
  storeEncoding(source, encodePicture(model, prepared.image), model.numBlocks());
  source.note = note;
  source.transform = prepared.transform;
  if (path.empty())
    source.spec = SourceSpec::inlineCode(std::vector<float>());  // no file: the picture stands in
  else
    source.spec = prepared.aligned ? SourceSpec::photo(path, prepared.face_index) : SourceSpec::centerCropped(path);
  return source;
}

std::vector<PreparedPhoto> PreparedPhotoCache::faces(const fs::path& path, int size, int channels,
                                                     const PhotoOptions& options) {
  std::error_code ec, absolute_ec;
  const auto absolute = fs::absolute(path, absolute_ec);
  const auto modified = fs::last_write_time(path, ec);  // ec: not cached (it will not read either)
  PhotoOptions o = options;
  o.center_crop_fallback = true;
  std::string key = (absolute_ec ? path : absolute).string();
  for (const std::string& part : {std::to_string(size), std::to_string(channels), photoOptionsKey(o),
                                  ec ? std::string("?") : std::to_string(modified.time_since_epoch().count())})
    key.append("|").append(part);
  {
    const std::lock_guard lock(mutex_);
    auto hit = std::find_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.key == key; });
    if (hit != entries_.end() && !ec) {
      entries_.splice(entries_.begin(), entries_, hit);
      return entries_.front().faces;
    }
  }
  // Outside the lock: detection takes a while. Notes name the file, not its folder (the editor shows them).
  auto faces = preparePhotoImage(readImage(path, 3), path.filename().string(), size, channels, o, true);
  const std::lock_guard lock(mutex_);
  if (ec) return faces;
  entries_.remove_if([&](const Entry& e) { return e.key == key; });
  entries_.push_front({key, faces});
  while (entries_.size() > capacity_) entries_.pop_back();
  return faces;
}

std::size_t PreparedPhotoCache::size() const {
  const std::lock_guard lock(mutex_);
  return entries_.size();
}

SourceEncoder::SourceEncoder(Automodulator& model, std::vector<EditSource> sources, PhotoOptions options)
    : model_(model), sources_(std::move(sources)), options_(std::move(options)) {
  if (!sources_.empty()) pending_ = prepare(0);
}

SourceEncoder::~SourceEncoder() {
  if (pending_.valid()) pending_.wait();
}

std::future<SourcePicture> SourceEncoder::prepare(std::size_t i) {
  return std::async(std::launch::async, [this, i] { return sourcePicture(model_, sources_[i], options_); });
}

SourceEncoder::Result SourceEncoder::next() {
  if (done()) throw Error("SourceEncoder::next called after the last source");
  const std::size_t i = next_++;
  Result r;
  r.source = sources_[i];
  try {
    SourcePicture picture = pending_.get();
    if (!done()) pending_ = prepare(next_);  // the next photo aligns while this one encodes
    encodeSourcePicture(model_, r.source, picture);
  } catch (const std::exception& e) {
    r.source = sources_[i];
    r.error = errorMessage(e);
    if (!done() && !pending_.valid()) pending_ = prepare(next_);
  }
  return r;
}

}  // namespace automod
