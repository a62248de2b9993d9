#include "core/io/torch_file.h"

// Only these ATen headers: <ATen/ATen.h> does not compile with clang 14 in C++20 mode (LibTorch 1.13),
// which the fuzz target needs, and they keep this file cheap to compile.
#include <ATen/EmptyTensor.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/from_blob.h>
#include <c10/util/Exception.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <new>
#include <unordered_map>

#include "core/io/zip_reader.h"
#include "core/util/error.h"

namespace automod {

// From core/io/archive.h (which pulls in LibTorch's full headers; see above).
uint32_t crc32(const void* data, size_t size, uint32_t crc);

namespace {

using pickle::printable;
using pickle::StorageRef;
using pickle::Value;
using pickle::ValuePtr;

// pickle of 0x1950a86a20f9469cfc6c, the legacy format's magic number: little-endian two's complement.
constexpr uint8_t kLegacyMagic[] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
constexpr int64_t kLegacyProtocol = 1001;
constexpr size_t kMaxDims = 64;
// Tensors are cloned out of their storages; views sharing a storage may take more than the file, but
// not without bound: a few bytes of pickle must not ask for gigabytes.
constexpr int64_t kTensorBytesPerFileByte = 4;
constexpr int64_t kTensorBytesSlack = int64_t{64} << 20;

struct StorageClass {
  const char* name;
  c10::ScalarType dtype;
};
constexpr StorageClass kStorageClasses[] = {
    {"FloatStorage", c10::ScalarType::Float},   {"DoubleStorage", c10::ScalarType::Double},
    {"HalfStorage", c10::ScalarType::Half},     {"BFloat16Storage", c10::ScalarType::BFloat16},
    {"LongStorage", c10::ScalarType::Long},     {"IntStorage", c10::ScalarType::Int},
    {"ShortStorage", c10::ScalarType::Short},   {"CharStorage", c10::ScalarType::Char},
    {"ByteStorage", c10::ScalarType::Byte},     {"BoolStorage", c10::ScalarType::Bool},
};

// Storage keys are short numbers and locations short names: longer ones are refused, so that a key
// used again and again (via the memo) cannot make every lookup slow.
constexpr size_t kMaxNameLength = 256;

/// Strings in order of first appearance, without repeats.
struct UniqueList {
  std::vector<std::string> items;
  std::set<std::string> seen;
  void add(const std::string& s) {
    if (seen.insert(s).second) items.push_back(s);
  }
};

std::string joinInts(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

/// Copies little-endian storage bytes into a new CPU tensor of `numel` elements.
at::Tensor storageTensor(std::span<const uint8_t> bytes, c10::ScalarType dtype, int64_t numel) {
  at::Tensor t(at::detail::empty_cpu({numel}, dtype));
  const size_t nbytes = static_cast<size_t>(numel) * c10::elementSize(dtype);
  if (nbytes) std::memcpy(t.data_ptr(), bytes.data(), nbytes);
  if constexpr (std::endian::native == std::endian::big) {
    const size_t es = c10::elementSize(dtype);
    auto* p = static_cast<uint8_t*>(t.data_ptr());
    for (size_t i = 0; es > 1 && i < nbytes; i += es) std::reverse(p + i, p + i + es);
  }
  return t;
}

bool contiguousStrides(const std::vector<int64_t>& size, const std::vector<int64_t>& stride) {
  int64_t expected = 1;
  for (size_t d = size.size(); d-- > 0;) {
    if (size[d] == 1) continue;
    if (stride[d] != expected) return false;
    expected *= size[d];
  }
  return true;
}

int64_t product(const std::vector<int64_t>& v) {
  int64_t n = 1;
  for (int64_t x : v) n *= x;
  return n;
}

}  // namespace

/// Where a streamed file's storages and placeholders are.
struct TorchTensorSource::Impl {
  struct Storage {
    uint64_t offset = 0;      // of the first data byte in the file
    uint64_t nbytes = 0;      // numel × element size
    uint64_t entry_size = 0;  // zip: the entry's size (its CRC covers all of it); legacy: nbytes
    uint32_t crc = 0;
    bool zip = false;
    c10::ScalarType dtype = c10::ScalarType::Float;
    int64_t numel = 0;
  };
  struct Placeholder {
    at::Tensor tensor;  // keeps the placeholder's TensorImpl (the key) alive
    std::string storage;
    int64_t offset = 0;  // elements from the storage's start
    std::vector<int64_t> size, stride;
  };

  std::string source;
  int fd = -1;
  std::map<std::string, Storage> storages;
  std::unordered_map<const c10::TensorImpl*, Placeholder> placeholders;
  mutable std::atomic<int64_t> bytes_read{0};
  // view(): a private copy-on-write mapping of the whole file, made on the first call and unmapped
  // with the last view, and the storages whose CRC-32 has been checked in it.
  mutable std::mutex map_mutex;
  mutable std::shared_ptr<void> map;
  mutable size_t map_size = 0;
  mutable std::set<std::string> verified;

  ~Impl() {
    if (fd >= 0) ::close(fd);
  }
  const Placeholder& find(const at::Tensor& t) const {
    auto it = t.defined() ? placeholders.find(t.unsafeGetTensorImpl()) : placeholders.end();
    if (it == placeholders.end()) throw Error(source + ": asked for a tensor that is not one of the file's");
    return it->second;
  }
  void readBytes(void* dst, uint64_t n, uint64_t offset, const std::string& key) const {
    auto* p = static_cast<char*>(dst);
    uint64_t done = 0;
    while (done < n) {
      const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n - done, uint64_t{1} << 30));
      const ssize_t r = ::pread(fd, p + done, chunk, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        throw Error(source + ": cannot read storage '" + printable(key) + "': " + std::strerror(errno));
      }
      if (r == 0)
        throw Error(source + ": truncated: storage '" + printable(key) + "' needs " + std::to_string(n) +
                    " bytes at byte " + std::to_string(offset) + " but the file ends before (changed while read?)");
      done += static_cast<uint64_t>(r);
    }
    bytes_read += static_cast<int64_t>(n);
  }
  void check(const void* data, const Storage& s, const std::string& key) const {
    if (s.zip && crc32(data, s.entry_size, 0) != s.crc)
      throw Error(source + ": storage '" + printable(key) + "' is corrupt: CRC-32 mismatch");
    if (s.dtype == c10::ScalarType::Bool) {
      const auto* b = static_cast<const uint8_t*>(data);
      if (std::any_of(b, b + s.nbytes, [](uint8_t x) { return x > 1; }))
        throw Error(source + ": bool storage '" + printable(key) + "' holds a byte other than 0 and 1");
    }
  }
  /// The whole storage as a 1-D tensor, checked.
  at::Tensor readStorage(const std::string& key, const Storage& s) const {
    // A zip entry longer than the storage is read whole, for its CRC.
    const int64_t es = static_cast<int64_t>(c10::elementSize(s.dtype));
    const int64_t elements = static_cast<int64_t>((s.entry_size + es - 1) / es);
    at::Tensor t(at::detail::empty_cpu({std::max(elements, s.numel)}, s.dtype));
    readBytes(t.data_ptr(), s.entry_size, s.offset, key);
    check(t.data_ptr(), s, key);
    if constexpr (std::endian::native == std::endian::big) {
      auto* p = static_cast<uint8_t*>(t.data_ptr());
      for (uint64_t i = 0; es > 1 && i < s.nbytes; i += es) std::reverse(p + i, p + i + es);
    }
    return t.narrow(0, 0, s.numel);
  }
};

namespace {

class Reader {
 public:
  Reader(std::span<const uint8_t> bytes, const std::string& source, bool lazy = false)
      : bytes_(bytes), source_(source), file_size_(static_cast<int64_t>(bytes.size())), lazy_(lazy) {
    if (lazy_) source_impl = std::make_unique<TorchTensorSource::Impl>();
  }

  TorchFile readZip();
  TorchFile readLegacy();

 private:
  struct Root {
    std::string type;
    c10::ScalarType dtype = c10::ScalarType::Float;
    std::string location;
    int64_t numel = 0;
    at::Tensor data;
    TorchTensorSource::Impl::Storage place;  // streamed: where its bytes are
  };

  [[noreturn]] void fail(const std::string& what) const { throw Error(source_ + ": " + what); }
  pickle::UnpickleHooks hooks() {
    pickle::UnpickleHooks h;
    h.persistent_load = [this](const ValuePtr& pid) { return persistentLoad(pid); };
    h.reduce = [this](const Value& callable, const ValuePtr& args) { return reduce(callable, args); };
    return h;
  }
  void resetBudget() {
    tensor_budget_ = kTensorBytesPerFileByte * file_size_ + kTensorBytesSlack;
    tensor_count_ = 0;
  }
  int64_t intField(const ValuePtr& v, const std::string& what) const {
    if (!v->isInt()) fail(what + " is " + v->describe() + ", not an int");
    return v->asInt();
  }
  const std::string& nameField(const ValuePtr& v, const std::string& what) const {
    if (!v->isString() && !v->isBytes()) fail(what + " is " + v->describe() + ", not a string");
    if (v->asString().size() > kMaxNameLength)
      fail(what + " is " + std::to_string(v->asString().size()) + " bytes long, more than " +
           std::to_string(kMaxNameLength));
    return v->asString();
  }
  std::vector<int64_t> intTuple(const ValuePtr& v, const std::string& what) const {
    if (!v->isTuple() && !v->isList()) fail(what + " is " + v->describe() + ", not a tuple");
    if (v->size() > kMaxDims) fail(what + " has " + std::to_string(v->size()) + " dimensions");
    std::vector<int64_t> out;
    for (const auto& e : v->elements()) {
      const int64_t x = intField(e, what + " element");
      if (x < 0) fail(what + " " + v->describe() + " holds a negative number");
      out.push_back(x);
    }
    return out;
  }

  ValuePtr persistentLoad(const ValuePtr& pid);
  Root& root(const ValuePtr& cls, const std::string& key, const std::string& location, int64_t numel);
  ValuePtr reduce(const Value& callable, const ValuePtr& args);
  ValuePtr rebuildTensor(const ValuePtr& args, bool v2);
  TorchFile result(ValuePtr root, std::string format);

  std::span<const uint8_t> bytes_;
  const std::string& source_;
  const int64_t file_size_;
  const bool lazy_;                   // streamed: placeholders instead of tensors
  const ZipReader* zip_ = nullptr;  // zip format: where storages are
  std::string prefix_;
  bool legacy_ = false;
  std::map<std::string, Root> roots_;
  std::map<std::string, ValuePtr> views_;  // legacy storage views by view key
  int64_t storage_bytes_ = 0;
  int64_t tensor_budget_ = 0;
  int64_t tensor_count_ = 0;
  UniqueList types_, locations_;
 public:
  std::unique_ptr<TorchTensorSource::Impl> source_impl;  // streamed: filled as placeholders are made
};

Reader::Root& Reader::root(const ValuePtr& cls, const std::string& key, const std::string& location,
                           int64_t numel) {
  if (!cls->isGlobal()) fail("a storage's class is " + cls->describe() + ", not a storage class");
  const std::string type = cls->qualifiedName();
  c10::ScalarType dtype{};
  if (!torchStorageType(type, &dtype))
    fail("unsupported storage class " + printable(type) + " (storage '" + printable(key) + "')");
  if (numel < 0) fail("storage '" + printable(key) + "' has a negative size");
  if (auto it = roots_.find(key); it != roots_.end()) {
    if (it->second.dtype != dtype || it->second.numel != numel)
      fail("storage '" + printable(key) + "' is named twice with different types or sizes");
    return it->second;
  }
  // Storages hold distinct bytes of the file: together they cannot be larger than it. (Legacy files
  // are checked as their storages are read, after the object, so that a cut file says "truncated".)
  const auto es = static_cast<int64_t>(c10::elementSize(dtype));
  if (numel > std::numeric_limits<int64_t>::max() / es ||
      (!legacy_ && (numel > file_size_ / es || storage_bytes_ + numel * es > file_size_)))
    fail("storage '" + printable(key) + "' of " + std::to_string(numel) +
         " elements does not fit: the storages would take more than the file's " + std::to_string(file_size_) +
         " bytes");
  const int64_t nbytes = numel * es;
  Root r{type, dtype, location, numel, {}};
  if (zip_) {
    const std::string entry = prefix_ + "/data/" + key;
    if (!zip_->has(entry)) fail("no data for storage '" + printable(key) + "' (entry '" + printable(entry) + "')");
    const uint64_t have = zip_->size(entry);
    if (have < static_cast<uint64_t>(nbytes))
      fail("storage '" + printable(key) + "' claims " + std::to_string(numel) + " elements (" +
           std::to_string(nbytes) + " bytes) but its data has only " + std::to_string(have) + " bytes");
    if (lazy_) {  // where its bytes are; read (and CRC-checked) when a placeholder is read
      const auto at = zip_->locate(entry);
      r.place = {at.offset, static_cast<uint64_t>(nbytes), at.size, at.crc, true, dtype, numel};
    } else {
      auto data = zip_->entry(entry);
      if (dtype == c10::ScalarType::Bool &&
          std::any_of(data.begin(), data.begin() + nbytes, [](uint8_t b) { return b > 1; }))
        fail("bool storage '" + printable(key) + "' holds a byte other than 0 and 1");
      r.data = storageTensor(data, dtype, numel);
    }
  }
  if (!legacy_) storage_bytes_ += nbytes;  // legacy: counted as read
  types_.add(type);
  locations_.add(location);
  return roots_.emplace(key, std::move(r)).first->second;
}

ValuePtr Reader::persistentLoad(const ValuePtr& pid) {
  // ('storage', storage class, key, location, numel) and, in legacy files, a sixth field: None or the
  // view (view key, offset, size) of a storage shared between views.
  if (!pid->isTuple() || pid->size() < 5 || pid->size() > 6 || !pid->at(0)->isString() ||
      pid->at(0)->asString() != "storage")
    fail("unsupported persistent id " + pid->describe() + " (expected a ('storage', …) tuple)");
  const std::string& key = nameField(pid->at(2), "a storage key");
  const std::string& location = nameField(pid->at(3), "the location of storage '" + printable(key) + "'");
  const int64_t numel = intField(pid->at(4), "the size of storage '" + printable(key) + "'");
  Root& r = root(pid->at(1), key, location, numel);
  StorageRef ref{r.type, r.dtype, key, r.location, r.numel, r.data, 0, key};
  if (pid->size() == 6 && !pid->at(5)->isNone()) {
    const ValuePtr& view = pid->at(5);
    if (!legacy_) fail("a storage view in a zip-format file");
    if (!view->isTuple() || view->size() != 3)
      fail("storage view " + view->describe() + " is not a (key, offset, size) tuple");
    const std::string& viewKey = nameField(view->at(0), "a storage view key");
    if (auto it = views_.find(viewKey); it != views_.end()) return it->second;
    const int64_t offset = intField(view->at(1), "the offset of storage view '" + printable(viewKey) + "'");
    const int64_t size = intField(view->at(2), "the size of storage view '" + printable(viewKey) + "'");
    if (offset < 0 || size < 0 || offset > r.numel || size > r.numel - offset)
      fail("storage view '" + printable(viewKey) + "' (" + std::to_string(size) + " elements at offset " +
           std::to_string(offset) + ") lies outside storage '" + printable(key) + "' of " +
           std::to_string(r.numel) + " elements");
    ref.key = viewKey;
    ref.offset = offset;
    ref.numel = size;
    ValuePtr v = Value::storage(std::move(ref));
    views_.emplace(viewKey, v);
    return v;
  }
  return Value::storage(std::move(ref));
}

ValuePtr Reader::rebuildTensor(const ValuePtr& args, bool v2) {
  // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks[, metadata]);
  // _rebuild_tensor(storage, offset, size, stride). requires_grad and hooks do not matter here.
  const size_t n = args->size();
  if (v2 ? (n < 6 || n > 7) : n != 4)
    fail(std::string(v2 ? "_rebuild_tensor_v2" : "_rebuild_tensor") + " called with " + args->describe());
  const ValuePtr& sv = args->at(0);
  if (!sv->isStorage()) fail("a tensor built from " + sv->describe() + ", not from a storage");
  const StorageRef& s = sv->storage();
  const int64_t offset = intField(args->at(1), "a tensor's storage offset");
  const std::vector<int64_t> size = intTuple(args->at(2), "a tensor's size");
  const std::vector<int64_t> stride = intTuple(args->at(3), "a tensor's stride");
  const auto describeView = [&] {
    return "tensor of size " + joinInts(size) + " (stride " + joinInts(stride) + ", offset " +
           std::to_string(offset) + ")";
  };
  if (size.size() != stride.size()) fail(describeView() + ": size and stride differ in length");
  if (offset < 0) fail(describeView() + " has a negative offset");

  // Bounds before any view exists: the last element reached must lie in the storage.
  int64_t numel = 1, last = offset;
  bool overflow = false;
  for (size_t d = 0; d < size.size(); ++d) {
    overflow |= __builtin_mul_overflow(numel, size[d], &numel);
    if (size[d] > 0) {
      int64_t reach = 0;
      overflow |= __builtin_mul_overflow(size[d] - 1, stride[d], &reach);
      overflow |= __builtin_add_overflow(last, reach, &last);
    }
  }
  if (overflow) fail(describeView() + " is too large");
  const bool empty = numel == 0;
  if (empty ? offset > s.numel : last >= s.numel)
    fail(describeView() + " reaches element " + std::to_string(empty ? offset : last) + " of storage '" +
         printable(s.key) + "', which holds " + std::to_string(s.numel) + " elements");
  int64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<int64_t>(c10::elementSize(s.dtype)), &nbytes) ||
      nbytes > tensor_budget_)
    fail(describeView() + ": the tensors would take more than " + std::to_string(kTensorBytesPerFileByte) +
         " times the file's size");
  tensor_budget_ -= nbytes;
  ++tensor_count_;
  if (lazy_) {
    at::Tensor placeholder(at::detail::empty_meta(size, at::TensorOptions().dtype(s.dtype)));
    source_impl->placeholders.emplace(placeholder.unsafeGetTensorImpl(),
                                      TorchTensorSource::Impl::Placeholder{placeholder, s.root_key,
                                                                           s.offset + offset, size, stride});
    return Value::tensor(std::move(placeholder));
  }
  if (!s.data.defined()) return Value::tensor(at::Tensor());  // legacy first pass: data not read yet
  at::Tensor t = s.data.as_strided(size, stride, s.offset + offset).clone(at::MemoryFormat::Contiguous);
  return Value::tensor(std::move(t));
}

ValuePtr Reader::reduce(const Value& callable, const ValuePtr& args) {
  const std::string& module = callable.module();
  const std::string& name = callable.name();
  if (module == "collections" && name == "OrderedDict") {
    if (args->size() == 0) return Value::emptyDict();  // Python 3: the items follow (SETITEMS)
    // Python 2 pickled OrderedDict([[key, value], ...]).
    const ValuePtr& pairs = args->at(0);
    if (args->size() != 1 || !(pairs->isList() || pairs->isTuple()))
      fail("collections.OrderedDict called with " + args->describe());
    std::vector<std::pair<ValuePtr, ValuePtr>> items;
    for (const auto& kv : pairs->elements()) {
      if (!(kv->isList() || kv->isTuple()) || kv->size() != 2)
        fail("collections.OrderedDict called with " + kv->describe() + " as a (key, value) pair");
      items.emplace_back(kv->at(0), kv->at(1));
    }
    return Value::dict(items);
  }
  if (module != "torch._utils") return nullptr;
  if (name == "_rebuild_tensor_v2") return rebuildTensor(args, true);
  if (name == "_rebuild_tensor") return rebuildTensor(args, false);
  if (name == "_rebuild_parameter" || name == "_rebuild_parameter_with_state") {
    // (data, requires_grad, backward_hooks[, state]): the parameter's tensor is all we keep.
    if (args->size() < 3 || args->size() > 4 || !args->at(0)->isTensor())
      fail("torch._utils." + name + " called with " + args->describe());
    return args->at(0);
  }
  return nullptr;
}

TorchFile Reader::result(ValuePtr root, std::string format) {
  TorchFile f;
  if (lazy_) {
    for (const auto& [key, r] : roots_) source_impl->storages.emplace(key, r.place);
    source_impl->source = source_;
    f.tensors = std::make_shared<TorchTensorSource>(std::move(source_impl));
  }
  f.root = std::move(root);
  f.format = std::move(format);
  f.archive_name = prefix_;
  f.storage_types = types_.items;
  f.locations = locations_.items;
  f.storage_count = static_cast<int64_t>(roots_.size());
  f.storage_bytes = storage_bytes_;
  f.tensor_count = tensor_count_;
  return f;
}

TorchFile Reader::readZip() {
  ZipReader zip(bytes_, source_);
  const std::vector<std::string> names = zip.names();
  if (names.empty()) fail("an empty zip archive, not a PyTorch checkpoint");
  const size_t slash = names.front().find('/');
  if (slash == std::string::npos || slash == 0)
    fail("a zip archive but not a torch.save file: its first entry '" + printable(names.front()) +
         "' is not inside a folder");
  prefix_ = names.front().substr(0, slash);
  const std::string pkl = prefix_ + "/data.pkl";
  if (!zip.has(pkl)) fail("a zip archive but not a torch.save file: it has no " + printable(pkl));
  if (!zip.has(prefix_ + "/version") && !zip.has(prefix_ + "/.data/version"))
    fail("a zip archive but not a torch.save file: it has no " + printable(prefix_) + "/version");
  if (zip.has(prefix_ + "/byteorder")) {
    auto bo = zip.entry(prefix_ + "/byteorder");
    std::string order(bo.begin(), bo.end());
    while (!order.empty() && std::isspace(static_cast<unsigned char>(order.back()))) order.pop_back();
    if (order != "little")
      fail("storages are stored in byte order '" + printable(order) + "'; only 'little' is supported");
  }
  zip_ = &zip;
  resetBudget();
  auto data = zip.entry(pkl);
  ValuePtr root = pickle::unpickle(data, source_ + " (" + printable(pkl) + ")", hooks()).value;
  zip_ = nullptr;
  return result(std::move(root), "zip");
}

TorchFile Reader::readLegacy() {
  legacy_ = true;
  // 1. the magic number, 2. the protocol version, 3. the system info: separate small pickles.
  const auto magic = pickle::unpickle(bytes_, source_);
  const bool isMagic = magic.value->kind() == Value::Kind::BigInt &&
                       magic.value->bigIntBytes() ==
                           std::string(reinterpret_cast<const char*>(kLegacyMagic), sizeof(kLegacyMagic));
  if (!isMagic) fail("not a PyTorch checkpoint: a pickle, but not one written by torch.save (no magic number)");
  const auto protocol = pickle::unpickle(bytes_, source_, {}, magic.end);
  if (!protocol.value->isInt() || protocol.value->asInt() != kLegacyProtocol)
    fail("unsupported legacy torch.save protocol (" + protocol.value->describe() + ", expected int 1001)");
  const auto sysInfo = pickle::unpickle(bytes_, source_, {}, protocol.end);
  if (!sysInfo.value->isDict()) fail("the legacy header's system info is " + sysInfo.value->describe());
  const ValuePtr little = sysInfo.value->find("little_endian");
  if (!little || !little->isBool() || !little->asBool())
    fail("saved on a big-endian machine (or without byte-order information); only little-endian files are supported");

  // 4. the saved object, whose storages are read only after 5. the list of storage keys: a first
  // pass over the object learns every storage's type and size (and checks every tensor's bounds).
  const size_t objectStart = sysInfo.end;
  resetBudget();
  const auto first = pickle::unpickle(bytes_, source_, hooks(), objectStart);
  const auto keys = pickle::unpickle(bytes_, source_, {}, first.end);
  if (!keys.value->isList()) fail("the legacy storage key list is " + keys.value->describe());

  // 6. each storage: int64 element count, then its raw little-endian bytes, in key-list order.
  size_t pos = keys.end;
  std::map<std::string, bool> seen;
  for (const auto& k : keys.value->elements()) {
    const std::string& key = nameField(k, "a storage key");
    auto it = roots_.find(key);
    if (it == roots_.end()) fail("the storage key list names storage '" + printable(key) + "', which is never used");
    if (!seen.emplace(key, true).second) fail("the storage key list names storage '" + printable(key) + "' twice");
    Root& r = it->second;
    if (bytes_.size() - pos < 8)
      fail("truncated: storage '" + printable(key) + "' should start at byte " + std::to_string(pos) +
           " but the file ends at byte " + std::to_string(bytes_.size()));
    int64_t count = 0;
    for (int i = 7; i >= 0; --i) count = static_cast<int64_t>((static_cast<uint64_t>(count) << 8) | bytes_[pos + i]);
    pos += 8;
    if (count != r.numel)
      fail("storage '" + printable(key) + "' at byte " + std::to_string(pos - 8) + " holds " +
           std::to_string(count) + " elements but the saved object says " + std::to_string(r.numel));
    const auto nbytes = static_cast<uint64_t>(r.numel) * c10::elementSize(r.dtype);  // no overflow (root())
    if (bytes_.size() - pos < nbytes)
      fail("truncated: storage '" + printable(key) + "' needs " + std::to_string(nbytes) + " bytes at byte " +
           std::to_string(pos) + " but the file ends at byte " + std::to_string(bytes_.size()));
    if (lazy_) {
      r.place = {pos, nbytes, nbytes, 0, false, r.dtype, r.numel};
    } else {
      std::span<const uint8_t> data = bytes_.subspan(pos, nbytes);
      if (r.dtype == c10::ScalarType::Bool && std::any_of(data.begin(), data.end(), [](uint8_t b) { return b > 1; }))
        fail("bool storage '" + printable(key) + "' holds a byte other than 0 and 1");
      r.data = storageTensor(data, r.dtype, r.numel);
    }
    pos += nbytes;
    storage_bytes_ += static_cast<int64_t>(nbytes);
  }
  for (const auto& [key, r] : roots_)
    if (!seen.count(key)) fail("storage '" + printable(key) + "' has no data (missing from the storage key list)");
  // Streamed, the first pass made the placeholders: the object is complete.
  if (lazy_) return result(first.value, "legacy");

  // Second pass: the same pickle, now building tensors from the storages' data.
  views_.clear();
  resetBudget();
  ValuePtr root = pickle::unpickle(bytes_, source_, hooks(), objectStart).value;
  return result(std::move(root), "legacy");
}

std::string firstLine(const std::string& s) {
  const auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

}  // namespace

bool torchStorageType(const std::string& qualified_name, c10::ScalarType* dtype) {
  std::string name;
  if (qualified_name.rfind("torch.cuda.", 0) == 0) {
    name = qualified_name.substr(11);
  } else if (qualified_name.rfind("torch.", 0) == 0) {
    name = qualified_name.substr(6);
  } else {
    return false;
  }
  for (const auto& c : kStorageClasses) {
    if (name == c.name) {
      if (dtype) *dtype = c.dtype;
      return true;
    }
  }
  return false;
}

namespace {

/// Reads bytes; with `fd` >= 0, streamed: the result reads tensors from `fd` (which it then owns).
TorchFile readTorch(std::span<const uint8_t> bytes, const std::string& source, int fd) {
  struct Closer {  // until the source owns it
    int fd;
    ~Closer() {
      if (fd >= 0) ::close(fd);
    }
  } closer{fd};
  try {
    if (bytes.empty()) throw Error(source + ": empty file, not a PyTorch checkpoint");
    Reader reader(bytes, source, fd >= 0);
    if (reader.source_impl) {
      reader.source_impl->fd = fd;
      closer.fd = -1;
    }
    if (bytes.size() >= 2 && bytes[0] == 'P' && bytes[1] == 'K') return reader.readZip();
    if (bytes[0] == 0x80) return reader.readLegacy();
    if (bytes.size() >= 262 && std::memcmp(bytes.data() + 257, "ustar", 5) == 0)
      throw Error(source + ": a tar archive: the tar format of torch.save before PyTorch 0.4 is not supported");
    throw Error(source + ": not a PyTorch checkpoint (neither a torch.save zip archive nor a legacy torch.save file)");
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Error(source + ": cannot read the file: " + firstLine(e.what_without_backtrace()));
  } catch (const std::bad_alloc&) {
    throw Error(source + ": out of memory while reading the file");
  } catch (const std::exception& e) {
    throw Error(source + ": cannot read the file: " + firstLine(e.what()));
  }
}

}  // namespace

TorchFile readTorchBytes(std::span<const uint8_t> bytes, const std::string& source) {
  return readTorch(bytes, source, -1);
}

TorchTensorSource::TorchTensorSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TorchTensorSource::~TorchTensorSource() = default;

bool TorchTensorSource::holds(const at::Tensor& t) const {
  return t.defined() && impl_->placeholders.count(t.unsafeGetTensorImpl()) > 0;
}

int64_t TorchTensorSource::bytesRead() const { return impl_->bytes_read; }

void TorchTensorSource::readInto(const at::Tensor& t, const at::Tensor& dst) const {
  const auto& p = impl_->find(t);
  const auto& s = impl_->storages.at(p.storage);
  const int64_t numel = product(p.size);
  if (!dst.defined() || !dst.device().is_cpu() || dst.numel() != numel)
    throw Error(impl_->source + ": a tensor of " + std::to_string(numel) + " elements cannot be read into one of " +
                std::to_string(dst.defined() ? dst.numel() : 0));
  try {
    const bool whole = p.offset == 0 && numel == s.numel && contiguousStrides(p.size, p.stride);
    if (whole && s.entry_size == s.nbytes && dst.is_contiguous() && dst.scalar_type() == s.dtype &&
        std::endian::native == std::endian::little) {
      // Straight into the destination: no copy, nothing kept.
      impl_->readBytes(dst.data_ptr(), s.nbytes, s.offset, p.storage);
      impl_->check(dst.data_ptr(), s, p.storage);
      return;
    }
    const at::Tensor storage = impl_->readStorage(p.storage, s);
    dst.copy_(storage.as_strided(p.size, p.stride, p.offset).reshape(dst.sizes()));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(impl_->source + ": cannot read storage '" + printable(p.storage) + "': " + firstLine(e.what()));
  }
}

at::Tensor TorchTensorSource::view(const at::Tensor& t) const {
  const auto& p = impl_->find(t);
  const auto& s = impl_->storages.at(p.storage);
  const uint64_t es = c10::elementSize(s.dtype);
  // Zip entries are stored, not compressed, and torch.save aligns them to 64 bytes; a legacy file's
  // storages follow their headers at any offset (and carry no CRC): those are read.
  if (!s.zip || std::endian::native != std::endian::little || s.offset % es != 0 || s.nbytes == 0) return {};
  std::shared_ptr<void> map;
  {
    std::lock_guard lock(impl_->map_mutex);
    struct stat st {};
    if (::fstat(impl_->fd, &st) != 0) return {};
    if (!impl_->map) {
      const auto size = static_cast<size_t>(st.st_size);
      void* m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, impl_->fd, 0);
      if (m == MAP_FAILED) return {};  // a file system without mmap: the caller reads instead
      impl_->map = std::shared_ptr<void>(m, [size](void* q) { ::munmap(q, size); });
      impl_->map_size = size;
    }
    // A file cut short since it was parsed would fault on the first access to the missing pages.
    if (static_cast<uint64_t>(st.st_size) < s.offset + s.entry_size || impl_->map_size < s.offset + s.entry_size)
      throw Error(impl_->source + ": truncated: storage '" + printable(p.storage) + "' needs " +
                  std::to_string(s.entry_size) + " bytes at byte " + std::to_string(s.offset) +
                  " but the file ends before (changed while read?)");
    map = impl_->map;
    const auto* data = static_cast<const uint8_t*>(map.get()) + s.offset;
    if (!impl_->verified.count(p.storage)) {
#ifdef MADV_POPULATE_READ
      // One call maps the entry's pages instead of a fault per page.
      const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
      const uintptr_t first = reinterpret_cast<uintptr_t>(data) & ~(page - 1);
      ::madvise(reinterpret_cast<void*>(first), reinterpret_cast<uintptr_t>(data) + s.entry_size - first,
                MADV_POPULATE_READ);
#endif
      impl_->check(data, s, p.storage);
      impl_->verified.insert(p.storage);
      impl_->bytes_read += static_cast<int64_t>(s.entry_size);
    }
  }
  auto* data = static_cast<uint8_t*>(map.get()) + s.offset;
  at::Tensor storage = at::from_blob(data, {s.numel}, [map](void*) {}, at::TensorOptions().dtype(s.dtype));
  return storage.as_strided(p.size, p.stride, p.offset);
}

at::Tensor TorchTensorSource::load(const at::Tensor& t) const {
  const auto& p = impl_->find(t);
  at::Tensor out(at::detail::empty_cpu(p.size, impl_->storages.at(p.storage).dtype));
  readInto(t, out);
  return out;
}

TorchFile readTorchFile(const std::filesystem::path& path, TorchRead mode) {
  const std::string source = path.string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open " + source + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error("cannot read " + source + ": not a regular file");
  }
  const auto size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return readTorchBytes({}, source);
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  // Streamed, the result keeps the descriptor to read tensors with; the mapping only serves the
  // parse (the pickle, the zip directory and headers), and its pages are dropped with it.
  const int keep = mode == TorchRead::Streamed ? fd : -1;
  if (keep < 0) ::close(fd);
  if (map == MAP_FAILED) {  // e.g. a file system without mmap: read it instead
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> bytes(size);
    if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size))) {
      if (keep >= 0) ::close(keep);
      throw Error("cannot read " + source + ": " + std::strerror(errno));
    }
    return readTorch(bytes, source, keep);
  }
  struct Unmap {
    void* p;
    size_t n;
    ~Unmap() { ::munmap(p, n); }
  } unmap{map, size};
  return readTorch({static_cast<const uint8_t*>(map), size}, source, keep);
}

}  // namespace automod

// ---------------------------------------------------------------------------------------------
// Writing

namespace automod {
namespace {

const char* storageClassName(c10::ScalarType dtype) {
  for (const auto& c : kStorageClasses)
    if (c.dtype == dtype) return c.name;
  throw Error(std::string("cannot write a tensor of type ") + c10::toString(dtype) + " into a torch.save file");
}

/// A pickle (protocol 2) of a Value tree, with tensors as torch.save writes them: persistent ids
/// naming storages, which are collected for the caller to write.
class PickleWriter {
 public:
  struct Storage {
    std::string key;
    at::Tensor keep;  // a tensor of the storage, which keeps it alive
    const void* data = nullptr;
    uint64_t nbytes = 0;
    int64_t numel = 0;
  };

  PickleWriter(const TorchWriteOptions& o, bool legacy) : options_(o), legacy_(legacy) {}

  std::string pickle(const Value& v) {
    out_.clear();
    op(0x80);
    out_.push_back(2);
    value(v);
    op('.');
    return out_;
  }
  const std::vector<Storage>& storages() const { return storages_; }

 private:
  void op(uint8_t c) { out_.push_back(static_cast<char>(c)); }
  void le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  void integer(int64_t v) {
    if (v >= 0 && v < 256) {
      op('K');
      le(static_cast<uint64_t>(v), 1);
    } else if (v >= 0 && v < 65536) {
      op('M');
      le(static_cast<uint64_t>(v), 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      op('J');
      le(static_cast<uint32_t>(static_cast<int32_t>(v)), 4);
    } else {
      op(0x8a);  // LONG1: 8 bytes of two's complement
      out_.push_back(8);
      le(static_cast<uint64_t>(v), 8);
    }
  }
  void text(const std::string& s) {
    op('X');
    le(s.size(), 4);
    out_ += s;
  }
  void global(const std::string& module, const std::string& name) {
    op('c');
    out_ += module + "\n" + name + "\n";
  }
  void value(const Value& v) {
    switch (v.kind()) {
      case Value::Kind::None: op('N'); return;
      case Value::Kind::Bool: op(v.asBool() ? 0x88 : 0x89); return;
      case Value::Kind::Int: integer(v.asInt()); return;
      case Value::Kind::Float: {
        op('G');
        const double d = v.asDouble();
        uint64_t bits = 0;
        std::memcpy(&bits, &d, 8);
        for (int i = 7; i >= 0; --i) out_.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
        return;
      }
      case Value::Kind::String: text(v.asString()); return;
      case Value::Kind::Tuple:
        op('(');
        for (const auto& e : v.elements()) value(*e);
        op('t');
        return;
      case Value::Kind::List:
        op(']');
        if (v.size() == 0) return;
        op('(');
        for (const auto& e : v.elements()) value(*e);
        op('e');
        return;
      case Value::Kind::Dict:
        op('}');
        if (v.size() == 0) return;
        op('(');
        for (const auto& [k, e] : v.items()) {
          value(*k);
          value(*e);
        }
        op('u');
        return;
      case Value::Kind::Tensor: tensor(v.tensor()); return;
      default: throw Error("cannot write " + v.describe() + " into a torch.save file");
    }
  }
  void tensor(const at::Tensor& t) {
    if (!t.defined() || !t.device().is_cpu() || t.is_meta())
      throw Error("cannot write an undefined, meta or non-CPU tensor into a torch.save file");
    const auto* impl = t.storage().unsafeGetStorageImpl();
    const auto es = static_cast<int64_t>(c10::elementSize(t.scalar_type()));
    const int64_t numel = static_cast<int64_t>(t.storage().nbytes()) / es;
    auto it = keys_.find(impl);
    if (it == keys_.end()) {
      const std::string key = std::to_string(storages_.size());
      storages_.push_back({key, t, t.storage().data(), static_cast<uint64_t>(numel * es), numel});
      it = keys_.emplace(impl, key).first;
    }
    const std::string prefix = options_.location == "cpu" ? "torch" : "torch.cuda";
    global("torch._utils", "_rebuild_tensor_v2");
    op('(');
    op('(');  // the persistent id
    text("storage");
    global(prefix, storageClassName(t.scalar_type()));
    text(it->second);
    text(options_.location);
    integer(numel);
    if (legacy_) op('N');  // no view
    op('t');
    op('Q');
    integer(t.storage_offset());
    op('(');
    for (int64_t x : t.sizes()) integer(x);
    op('t');
    op('(');
    for (int64_t x : t.strides()) integer(x);
    op('t');
    op(0x89);  // requires_grad
    global("collections", "OrderedDict");
    op(')');
    op('R');
    op('t');
    op('R');
  }

  const TorchWriteOptions& options_;
  const bool legacy_;
  std::string out_;
  std::vector<Storage> storages_;
  std::map<const c10::StorageImpl*, std::string> keys_;
};

class FileOut {
 public:
  explicit FileOut(const std::filesystem::path& path) : path_(path), out_(path, std::ios::binary | std::ios::trunc) {
    if (!out_) throw Error("cannot write " + path.string() + ": " + std::strerror(errno));
  }
  void write(const void* p, size_t n) {
    out_.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
    pos_ += n;
  }
  void write(const std::string& s) { write(s.data(), s.size()); }
  void le(uint64_t v, int n) {
    char b[8];
    for (int i = 0; i < n; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    write(b, static_cast<size_t>(n));
  }
  uint64_t pos() const { return pos_; }
  void close() {
    out_.close();
    if (!out_) throw Error("cannot write " + path_.string() + ": " + std::strerror(errno));
  }

 private:
  std::filesystem::path path_;
  std::ofstream out_;
  uint64_t pos_ = 0;
};

void writeZip(const std::filesystem::path& path, const std::string& name, const std::string& pkl,
              const std::vector<PickleWriter::Storage>& storages) {
  struct Entry {
    std::string name;
    const void* data;
    uint64_t size;
  };
  std::vector<Entry> entries{{name + "/data.pkl", pkl.data(), pkl.size()}};
  for (const auto& s : storages)
    entries.push_back({name + "/data/" + s.key, s.data, s.nbytes});
  static const std::string version = "3\n";
  entries.push_back({name + "/version", version.data(), version.size()});

  FileOut f(path);
  std::string central;
  const auto put = [](std::string& out, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  for (const auto& e : entries) {
    const uint32_t crc = crc32(e.data, e.size, 0);
    const uint64_t offset = f.pos();
    // Data aligned to 64 bytes, as torch.save aligns it: padding in an extra field ("FB").
    const uint64_t unpadded = offset + 30 + e.name.size() + 4;
    const uint64_t pad = (64 - unpadded % 64) % 64;
    if (offset + 30 + e.name.size() + 4 + pad + e.size > 0xFFFFFFFFull)
      throw Error("cannot write " + path.string() + ": zip archives over 4 GiB are not supported here");
    std::string h;
    put(h, 0x04034b50, 4);
    put(h, 20, 2);  // version needed
    put(h, 0, 2);   // flags
    put(h, 0, 2);   // stored
    put(h, 0, 4);   // time, date
    put(h, crc, 4);
    put(h, e.size, 4);
    put(h, e.size, 4);
    put(h, e.name.size(), 2);
    put(h, 4 + pad, 2);
    h += e.name;
    put(h, 0x4246, 2);  // "FB"
    put(h, pad, 2);
    h.append(pad, 'Z');
    f.write(h);
    f.write(e.data, e.size);
    put(central, 0x02014b50, 4);
    put(central, 20, 2);  // version made by
    put(central, 20, 2);  // version needed
    put(central, 0, 2);
    put(central, 0, 2);
    put(central, 0, 4);
    put(central, crc, 4);
    put(central, e.size, 4);
    put(central, e.size, 4);
    put(central, e.name.size(), 2);
    put(central, 0, 2);  // extra
    put(central, 0, 2);  // comment
    put(central, 0, 2);  // disk
    put(central, 0, 2);  // internal attributes
    put(central, 0, 4);  // external attributes
    put(central, offset, 4);
    central += e.name;
  }
  const uint64_t cd = f.pos();
  if (cd + central.size() > 0xFFFFFFFFull || entries.size() >= 0xFFFF)
    throw Error("cannot write " + path.string() + ": zip archives over 4 GiB are not supported here");
  f.write(central);
  std::string end;
  put(end, 0x06054b50, 4);
  put(end, 0, 4);
  put(end, entries.size(), 2);
  put(end, entries.size(), 2);
  put(end, central.size(), 4);
  put(end, cd, 4);
  put(end, 0, 2);
  f.write(end);
  f.close();
}

void writeLegacy(const std::filesystem::path& path, const std::string& object,
                 const std::vector<PickleWriter::Storage>& storages) {
  FileOut f(path);
  std::string head{'\x80', '\x02', '\x8a', '\x0a'};
  head.append(reinterpret_cast<const char*>(kLegacyMagic), sizeof(kLegacyMagic));
  head += '.';
  head += std::string{'\x80', '\x02', 'M'} + static_cast<char>(kLegacyProtocol & 0xff) +
          static_cast<char>(kLegacyProtocol >> 8) + '.';
  // {'protocol_version': 1001, 'little_endian': True, 'type_sizes': {'short': 2, 'int': 4, 'long': 4}}
  auto sys = pickle::Value::dict(
      {{pickle::Value::string("protocol_version"), pickle::Value::integer(kLegacyProtocol)},
       {pickle::Value::string("little_endian"), pickle::Value::boolean(true)},
       {pickle::Value::string("type_sizes"),
        pickle::Value::dict({{pickle::Value::string("short"), pickle::Value::integer(2)},
                             {pickle::Value::string("int"), pickle::Value::integer(4)},
                             {pickle::Value::string("long"), pickle::Value::integer(4)}})}});
  TorchWriteOptions none;
  PickleWriter plain(none, true);
  head += plain.pickle(*sys);
  f.write(head);
  f.write(object);
  std::vector<ValuePtr> keys;
  for (const auto& s : storages) keys.push_back(pickle::Value::string(s.key));
  f.write(plain.pickle(*pickle::Value::list(keys)));
  for (const auto& s : storages) {
    f.le(static_cast<uint64_t>(s.numel), 8);
    f.write(s.data, s.nbytes);
  }
  f.close();
}

}  // namespace

void writeTorchFile(const std::filesystem::path& path, const pickle::ValuePtr& root, const TorchWriteOptions& options) {
  if (std::endian::native != std::endian::little) throw Error("writing torch.save files needs a little-endian machine");
  if (options.format != "zip" && options.format != "legacy")
    throw Error("unknown torch.save format '" + options.format + "' (zip or legacy)");
  const bool legacy = options.format == "legacy";
  PickleWriter w(options, legacy);
  const std::string pkl = w.pickle(*root);
  if (legacy) {
    writeLegacy(path, pkl, w.storages());
  } else {
    writeZip(path, options.archive_name.empty() ? "archive" : options.archive_name, pkl, w.storages());
  }
}

}  // namespace automod
