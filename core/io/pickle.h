#pragma once
// A safe reader for Python pickles (protocols 2-5, the opcode subset torch.save uses): a small
// virtual machine that builds an immutable tree of Values and never executes anything. A GLOBAL is an
// opaque name (module, name); calling one (REDUCE, NEWOBJ) makes an Object holding the name and the
// arguments unless the caller's reduce hook turns it into something else (a dict, a tensor); BUILD
// attaches state to an Object and is ignored on a dict (OrderedDict's `_metadata`). Persistent ids
// (BINPERSID) go to the caller's resolver. Input is untrusted: container nesting, the number of values
// and every length are bounded, and anything unexpected throws automod::Error with one line naming
// the source, the opcode and the byte offset.
#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace automod::pickle {

/// Containers may not nest deeper than this (torch checkpoints nest about 5 deep).
constexpr int kMaxDepth = 200;

class Value;
using ValuePtr = std::shared_ptr<const Value>;

/// A storage as named by a torch.save persistent id, with its data once read (a 1-D tensor of
/// `numel` elements starting `offset` elements into `data`, which owns its memory).
struct StorageRef {
  std::string type;  ///< the storage class, e.g. "torch.FloatStorage" or "torch.cuda.HalfStorage"
  c10::ScalarType dtype = c10::ScalarType::Float;
  std::string key;       ///< "0", "1", … in zip files; a number in legacy files
  std::string location;  ///< "cpu", "cuda:0", …
  int64_t numel = 0;
  at::Tensor data;     ///< undefined until the storage's bytes have been read
  int64_t offset = 0;  ///< first element of this storage in `data` (legacy storage views)
  std::string root_key;  ///< the storage that holds the bytes: `key`, or a legacy view's storage
};

class Value {
 public:
  enum class Kind { None, Bool, Int, BigInt, Float, String, Bytes, Tuple, List, Dict, Global, Object, Storage, Tensor };

  static ValuePtr none();
  static ValuePtr boolean(bool v);
  static ValuePtr integer(int64_t v);
  static ValuePtr real(double v);
  static ValuePtr string(std::string v);
  static ValuePtr bytes(std::string v);
  /// An empty dict, to be filled by the pickle that follows (a reduce hook returns it for OrderedDict).
  static ValuePtr emptyDict();
  /// A dict of `items` (a key given again keeps its first place with the later value), which the
  /// pickle that follows may still fill. For reduce hooks: the items must come from the hook's
  /// arguments, which the depth limit has already covered.
  static ValuePtr dict(const std::vector<std::pair<ValuePtr, ValuePtr>>& items);
  /// A tuple or a list of `elements` (for building trees to write: writeTorchFile).
  static ValuePtr tuple(std::vector<ValuePtr> elements);
  static ValuePtr list(std::vector<ValuePtr> elements);
  static ValuePtr global(std::string module, std::string name);
  static ValuePtr tensor(at::Tensor t);
  static ValuePtr storage(StorageRef s);

  Kind kind() const { return kind_; }
  bool isNone() const { return kind_ == Kind::None; }
  bool isBool() const { return kind_ == Kind::Bool; }
  bool isInt() const { return kind_ == Kind::Int; }
  bool isFloat() const { return kind_ == Kind::Float; }
  bool isString() const { return kind_ == Kind::String; }
  bool isBytes() const { return kind_ == Kind::Bytes; }
  bool isTuple() const { return kind_ == Kind::Tuple; }
  bool isList() const { return kind_ == Kind::List; }
  bool isDict() const { return kind_ == Kind::Dict; }
  bool isGlobal() const { return kind_ == Kind::Global; }
  bool isObject() const { return kind_ == Kind::Object; }
  bool isStorage() const { return kind_ == Kind::Storage; }
  bool isTensor() const { return kind_ == Kind::Tensor; }
  /// Nesting depth: 1 for a scalar, 1 + the deepest element for a container.
  int depth() const { return depth_; }

  // Accessors throw automod::Error ("expected an int, found list of 3 items") on the wrong kind.
  bool asBool() const;
  int64_t asInt() const;
  /// A Float, or an Int converted.
  double asDouble() const;
  /// A String's UTF-8 text, or a Bytes value's bytes.
  const std::string& asString() const;
  /// Little-endian two's-complement bytes of an integer too large for int64 (LONG1/LONG4).
  const std::string& bigIntBytes() const;

  /// Elements of a Tuple or List.
  const std::vector<ValuePtr>& elements() const;
  /// Number of elements of a Tuple or List, or of items of a Dict.
  size_t size() const;
  /// Element `i` of a Tuple or List.
  const ValuePtr& at(size_t i) const;

  /// Items of a Dict in insertion order (a key set again keeps its first place, as in Python).
  const std::vector<std::pair<ValuePtr, ValuePtr>>& items() const;
  /// Whether a Dict has the string key `key`.
  bool contains(const std::string& key) const;
  /// The value under string key `key` of a Dict; throws automod::Error naming the key when missing.
  const ValuePtr& at(const std::string& key) const;
  /// The value under string key `key`, or nullptr.
  ValuePtr find(const std::string& key) const;
  /// The string keys of a Dict, in order (other keys are skipped).
  std::vector<std::string> keys() const;

  /// A Global's module and name; for an Object, those of the global it was made from.
  const std::string& module() const;
  const std::string& name() const;
  /// "module.name" of a Global or Object.
  std::string qualifiedName() const;
  /// An Object's arguments (a Tuple) and its BUILD state (nullptr when none).
  const ValuePtr& args() const;
  const ValuePtr& state() const;

  const at::Tensor& tensor() const;
  const StorageRef& storage() const;

  /// A short description for error messages: "int 5", "string 'abc'", "dict of 3 items",
  /// "tensor Float [3, 32, 1, 1]", "object torch.device(…)".
  std::string describe() const;

 private:
  // Dict keys that are strings, ints, bools or None are indexed, as Python would hash them. A
  // string's hash is computed once, when it is made, so that a key used again costs no rehash.
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(const Value* v) const;
    size_t operator()(std::string_view s) const;
  };
  struct KeyEqual {
    using is_transparent = void;
    bool operator()(const Value* a, const Value* b) const;
    bool operator()(std::string_view a, const Value* b) const;
    bool operator()(const Value* a, std::string_view b) const { return (*this)(b, a); }
  };

  explicit Value(Kind k) : kind_(k) {}
  static std::shared_ptr<Value> make(Kind k);
  [[noreturn]] void wrongKind(const char* expected) const;
  bool indexable() const;
  void setText(std::string text);
  const ValuePtr* lookup(std::string_view key) const;

  Kind kind_;
  bool sealed_ = false;  // placed inside another container: no longer mutable while unpickling
  int depth_ = 1;
  bool bool_ = false;
  int64_t int_ = 0;
  double float_ = 0;
  std::string text_;      // String, Bytes, BigInt; a Global's module
  size_t text_hash_ = 0;  // String
  std::string name_;      // a Global's name
  std::vector<ValuePtr> elements_;
  std::vector<std::pair<ValuePtr, ValuePtr>> items_;
  std::unordered_map<const Value*, size_t, KeyHash, KeyEqual> index_;  // Dict: indexable key → item
  ValuePtr callable_, args_, state_;  // Object
  at::Tensor tensor_;
  std::shared_ptr<const StorageRef> storage_;

  friend class Machine;
};

/// What the unpickler asks of its caller.
struct UnpickleHooks {
  /// BINPERSID: turns a persistent id into a value. When unset, a persistent id is an error.
  std::function<ValuePtr(const ValuePtr& pid)> persistent_load;
  /// REDUCE and NEWOBJ of a Global: the value to push, or nullptr for the default Object.
  /// Returned containers must be new (emptyDict()), since the pickle may still fill them.
  std::function<ValuePtr(const Value& callable, const ValuePtr& args)> reduce;
};

struct Unpickled {
  ValuePtr value;
  size_t end = 0;  ///< offset just past the STOP opcode (where a following pickle starts)
};

/// `s` fit for a one-line message: control characters and bytes that are not UTF-8 escaped as \xNN,
/// cut after about `max_len` bytes.
std::string printable(const std::string& s, size_t max_len = 80);

/// Runs the pickle starting at `offset` in `bytes` up to its STOP. Errors name `source` and absolute
/// byte offsets in `bytes`: "<source>: not a PyTorch checkpoint: pickle opcode 0x49 at byte 12 is not
/// supported", "<source>: truncated pickle: …".
Unpickled unpickle(std::span<const uint8_t> bytes, const std::string& source, const UnpickleHooks& hooks = {},
                   size_t offset = 0);

}  // namespace automod::pickle
