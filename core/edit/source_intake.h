#pragma once
// Photos into the editor's sources (docs/editor-architecture.md): the one way a photo file, a pasted
// picture or a source of another model becomes an EditSource with its picture, codes,
// reconstruction and figures. The editor's photo intake, its re-encoding after a model change and the
// headless job all go through these; edit_state's encodeSource is their one-source form.
#include <torch/types.h>

#include <cstddef>
#include <filesystem>
#include <future>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/align/photo.h"
#include "core/edit/edit_state.h"

namespace automod {

class Automodulator;

/// Stores an encoding in `source`: its picture, reconstruction, encoder code, that code in each of the
/// model's `num_blocks` blocks (any refinement is gone) and PSNR/SSIM.
void storeEncoding(EditSource& source, const EncodedPicture& encoded, int num_blocks);

/// The picture a source is encoded from for `model`: its photo file prepared again (with the face it
/// names, or centre-cropped as it was), else its picture brought to the model's size and channels.
struct SourcePicture {
  torch::Tensor image;  // uint8 [R, R, C]
  bool from_file = false;
  AlignTransform transform;  // from_file only
  std::string note;          // from_file only
};
/// Throws automod::Error when the source has neither a readable photo file nor a picture.
SourcePicture sourcePicture(const Automodulator& model, const EditSource& source, const PhotoOptions& options);
/// Encodes `picture` into `source` (storeEncoding, and the photo's transform and note when it came
/// from a file).
void encodeSourcePicture(Automodulator& model, EditSource& source, const SourcePicture& picture);

/// A new source from face `face` (-1: the largest) of a photo's prepared faces (prepareAllFaces, or
/// preparePhotoImage with all faces): named `name`, with " (face k)" when the photo has several, a
/// note saying which face and why, its spec naming `path` with that face (or a centre crop when no
/// face was found), encoded by `model`. An empty `path` is a pasted picture: its spec is then a code with the picture standing in
/// for a file. Throws automod::Error when face `face` does not exist.
EditSource sourceFromFaces(Automodulator& model, const std::vector<PreparedPhoto>& faces, int face,
                           const std::string& name, const std::filesystem::path& path);

/// The faces of the last few photos prepared for a model (every face, or the centre crop of a photo
/// without one), so that a photo whose face the user picks after seeing them all is not detected
/// again. An entry holds while its file's modification time, the model's size and channels and the
/// photo options (photoOptionsKey) are the same. Safe to share between threads.
class PreparedPhotoCache {
 public:
  explicit PreparedPhotoCache(std::size_t capacity = 4) : capacity_(capacity) {}
  /// prepareAllFaces(path, size, channels, options) with a centre-crop fallback (its notes naming
  /// the file without its folder), or the cached result. Throws automod::Error for an unreadable photo (nothing is cached then).
  std::vector<PreparedPhoto> faces(const std::filesystem::path& path, int size, int channels,
                                   const PhotoOptions& options);
  std::size_t size() const;

 private:
  struct Entry {
    std::string key;
    std::vector<PreparedPhoto> faces;
  };
  std::size_t capacity_;
  mutable std::mutex mutex_;
  std::list<Entry> entries_;  // most recent first
};

/// Sources encoded again for a model, one at a time, in order: while one encodes, the next one's photo
/// is read and aligned on another thread, so that a batch costs about the encoder's time rather than
/// alignment plus encoding per photo. The caller drives it (next() until done()), so it can report,
/// yield and stop between sources.
class SourceEncoder {
 public:
  /// Starts preparing the first source at once.
  SourceEncoder(Automodulator& model, std::vector<EditSource> sources, PhotoOptions options);
  ~SourceEncoder();  // waits for a preparation still running
  SourceEncoder(const SourceEncoder&) = delete;
  SourceEncoder& operator=(const SourceEncoder&) = delete;

  bool done() const { return next_ >= sources_.size(); }
  std::size_t size() const { return sources_.size(); }
  struct Result {
    EditSource source;  // encoded; unchanged when `error` is set
    std::string error;  // why this source cannot be encoded (its photo is gone, unreadable, ...)
  };
  /// The next source, encoded (or its error). Call only while !done().
  Result next();

 private:
  std::future<SourcePicture> prepare(std::size_t i);
  Automodulator& model_;
  std::vector<EditSource> sources_;
  PhotoOptions options_;
  std::size_t next_ = 0;
  std::future<SourcePicture> pending_;  // the picture of sources_[next_]
};

}  // namespace automod
