#include "core/io/torch_file.h"

// Only these ATen headers: <ATen/ATen.h> does not compile with clang 14 in C++20 mode (LibTorch 1.13),
// which the fuzz target needs, and they keep this file cheap to compile.
#include <ATen/EmptyTensor.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <new>

#include "core/io/zip_reader.h"
#include "core/util/error.h"

namespace automod {
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

class Reader {
 public:
  Reader(std::span<const uint8_t> bytes, const std::string& source)
      : bytes_(bytes), source_(source), file_size_(static_cast<int64_t>(bytes.size())) {}

  TorchFile readZip();
  TorchFile readLegacy();

 private:
  struct Root {
    std::string type;
    c10::ScalarType dtype = c10::ScalarType::Float;
    std::string location;
    int64_t numel = 0;
    at::Tensor data;
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
  TorchFile result(ValuePtr root, std::string format) const;

  std::span<const uint8_t> bytes_;
  const std::string& source_;
  const int64_t file_size_;
  const ZipReader* zip_ = nullptr;  // zip format: where storages are
  std::string prefix_;
  bool legacy_ = false;
  std::map<std::string, Root> roots_;
  std::map<std::string, ValuePtr> views_;  // legacy storage views by view key
  int64_t storage_bytes_ = 0;
  int64_t tensor_budget_ = 0;
  int64_t tensor_count_ = 0;
  UniqueList types_, locations_;
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
    auto data = zip_->entry(entry);
    if (dtype == c10::ScalarType::Bool &&
        std::any_of(data.begin(), data.begin() + nbytes, [](uint8_t b) { return b > 1; }))
      fail("bool storage '" + printable(key) + "' holds a byte other than 0 and 1");
    r.data = storageTensor(data, dtype, numel);
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
  StorageRef ref{r.type, r.dtype, key, r.location, r.numel, r.data, 0};
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

TorchFile Reader::result(ValuePtr root, std::string format) const {
  TorchFile f;
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
    std::span<const uint8_t> data = bytes_.subspan(pos, nbytes);
    if (r.dtype == c10::ScalarType::Bool && std::any_of(data.begin(), data.end(), [](uint8_t b) { return b > 1; }))
      fail("bool storage '" + printable(key) + "' holds a byte other than 0 and 1");
    r.data = storageTensor(data, r.dtype, r.numel);
    pos += nbytes;
    storage_bytes_ += static_cast<int64_t>(nbytes);
  }
  for (const auto& [key, r] : roots_)
    if (!r.data.defined()) fail("storage '" + printable(key) + "' has no data (missing from the storage key list)");

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

TorchFile readTorchBytes(std::span<const uint8_t> bytes, const std::string& source) {
  try {
    if (bytes.empty()) throw Error(source + ": empty file, not a PyTorch checkpoint");
    Reader reader(bytes, source);
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

TorchFile readTorchFile(const std::filesystem::path& path) {
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
  ::close(fd);
  if (map == MAP_FAILED) {  // e.g. a file system without mmap: read it instead
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> bytes(size);
    if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size)))
      throw Error("cannot read " + source + ": " + std::strerror(errno));
    return readTorchBytes(bytes, source);
  }
  struct Unmap {
    void* p;
    size_t n;
    ~Unmap() { ::munmap(p, n); }
  } unmap{map, size};
  return readTorchBytes({static_cast<const uint8_t*>(map), size}, source);
}

}  // namespace automod
