#include "core/io/pickle.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <sstream>

#include "core/util/error.h"

namespace automod::pickle {
namespace {

const char* kindName(Value::Kind k) {
  switch (k) {
    case Value::Kind::None: return "None";
    case Value::Kind::Bool: return "bool";
    case Value::Kind::Int: return "int";
    case Value::Kind::BigInt: return "int";
    case Value::Kind::Float: return "float";
    case Value::Kind::String: return "string";
    case Value::Kind::Bytes: return "bytes";
    case Value::Kind::Tuple: return "tuple";
    case Value::Kind::List: return "list";
    case Value::Kind::Dict: return "dict";
    case Value::Kind::Global: return "global";
    case Value::Kind::Object: return "object";
    case Value::Kind::Storage: return "storage";
    case Value::Kind::Tensor: return "tensor";
  }
  return "value";
}

std::string hexByte(uint8_t b) {
  static const char* digits = "0123456789abcdef";
  return std::string("0x") + digits[b >> 4] + digits[b & 15];
}

}  // namespace

std::string printable(const std::string& s, size_t max_len) {
  // Valid UTF-8 is kept; control characters and bytes that are not UTF-8 are escaped as \xNN.
  std::string out;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    if (out.size() >= max_len) {
      out += "…";
      break;
    }
    const unsigned char c = p[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    for (size_t k = 1; k < len; ++k)
      if (i + k >= n || (p[i + k] & 0xc0) != 0x80) len = 0;
    if (len == 0 || (len == 1 && (c < 0x20 || c == 0x7f))) {
      out += "\\x" + hexByte(c).substr(2);
      ++i;
    } else {
      out.append(s, i, len);
      i += len;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Value

std::shared_ptr<Value> Value::make(Kind k) { return std::shared_ptr<Value>(new Value(k)); }

ValuePtr Value::none() { return make(Kind::None); }
ValuePtr Value::boolean(bool v) {
  auto p = make(Kind::Bool);
  p->bool_ = v;
  return p;
}
ValuePtr Value::integer(int64_t v) {
  auto p = make(Kind::Int);
  p->int_ = v;
  return p;
}
ValuePtr Value::real(double v) {
  auto p = make(Kind::Float);
  p->float_ = v;
  return p;
}
ValuePtr Value::string(std::string v) {
  auto p = make(Kind::String);
  p->setText(std::move(v));
  return p;
}
ValuePtr Value::bytes(std::string v) {
  auto p = make(Kind::Bytes);
  p->text_ = std::move(v);
  return p;
}
ValuePtr Value::emptyDict() { return make(Kind::Dict); }
ValuePtr Value::dict(const std::vector<std::pair<ValuePtr, ValuePtr>>& items) {
  auto d = make(Kind::Dict);
  for (const auto& [k, v] : items) {
    d->depth_ = std::max({d->depth_, k->depth_ + 1, v->depth_ + 1});
    if (k->indexable()) {
      auto [it, inserted] = d->index_.emplace(k.get(), d->items_.size());
      if (!inserted) {
        d->items_[it->second].second = v;
        continue;
      }
    }
    d->items_.emplace_back(k, v);
  }
  return d;
}
ValuePtr Value::tuple(std::vector<ValuePtr> elements) {
  auto p = make(Kind::Tuple);
  for (const auto& e : elements) p->depth_ = std::max(p->depth_, e->depth_ + 1);
  p->elements_ = std::move(elements);
  return p;
}
ValuePtr Value::list(std::vector<ValuePtr> elements) {
  auto p = make(Kind::List);
  for (const auto& e : elements) p->depth_ = std::max(p->depth_, e->depth_ + 1);
  p->elements_ = std::move(elements);
  return p;
}
ValuePtr Value::global(std::string module, std::string name) {
  auto p = make(Kind::Global);
  p->text_ = std::move(module);
  p->name_ = std::move(name);
  return p;
}
ValuePtr Value::tensor(at::Tensor t) {
  auto p = make(Kind::Tensor);
  p->tensor_ = std::move(t);
  return p;
}
ValuePtr Value::storage(StorageRef s) {
  auto p = make(Kind::Storage);
  p->storage_ = std::make_shared<const StorageRef>(std::move(s));
  return p;
}

void Value::wrongKind(const char* expected) const {
  throw Error(std::string("expected ") + expected + ", found " + describe());
}

bool Value::asBool() const {
  if (kind_ != Kind::Bool) wrongKind("a bool");
  return bool_;
}
int64_t Value::asInt() const {
  if (kind_ == Kind::Bool) return bool_ ? 1 : 0;
  if (kind_ != Kind::Int) wrongKind("an int");
  return int_;
}
double Value::asDouble() const {
  if (kind_ == Kind::Int) return static_cast<double>(int_);
  if (kind_ != Kind::Float) wrongKind("a float");
  return float_;
}
const std::string& Value::asString() const {
  if (kind_ != Kind::String && kind_ != Kind::Bytes) wrongKind("a string");
  return text_;
}
const std::string& Value::bigIntBytes() const {
  if (kind_ != Kind::BigInt) wrongKind("a large int");
  return text_;
}
const std::vector<ValuePtr>& Value::elements() const {
  if (kind_ != Kind::Tuple && kind_ != Kind::List) wrongKind("a tuple or list");
  return elements_;
}
size_t Value::size() const {
  if (kind_ == Kind::Dict) return items_.size();
  return elements().size();
}
const ValuePtr& Value::at(size_t i) const {
  const auto& e = elements();
  if (i >= e.size())
    throw Error("expected at least " + std::to_string(i + 1) + " items, found " + describe());
  return e[i];
}
const std::vector<std::pair<ValuePtr, ValuePtr>>& Value::items() const {
  if (kind_ != Kind::Dict) wrongKind("a dict");
  return items_;
}
const ValuePtr* Value::lookup(std::string_view key) const {
  if (kind_ != Kind::Dict) wrongKind("a dict");
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &items_[it->second].second;
}
bool Value::contains(const std::string& key) const { return lookup(key) != nullptr; }
ValuePtr Value::find(const std::string& key) const {
  const ValuePtr* v = lookup(key);
  return v ? *v : nullptr;
}
const ValuePtr& Value::at(const std::string& key) const {
  const ValuePtr* v = lookup(key);
  if (!v) throw Error("missing key '" + printable(key) + "' in " + describe());
  return *v;
}
std::vector<std::string> Value::keys() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : items())
    if (k->kind_ == Kind::String) out.push_back(k->text_);
  return out;
}
const std::string& Value::module() const {
  if (kind_ == Kind::Object) return callable_->module();
  if (kind_ != Kind::Global) wrongKind("a global");
  return text_;
}
const std::string& Value::name() const {
  if (kind_ == Kind::Object) return callable_->name();
  if (kind_ != Kind::Global) wrongKind("a global");
  return name_;
}
std::string Value::qualifiedName() const { return module() + "." + name(); }
const ValuePtr& Value::args() const {
  if (kind_ != Kind::Object) wrongKind("an object");
  return args_;
}
const ValuePtr& Value::state() const {
  if (kind_ != Kind::Object) wrongKind("an object");
  return state_;
}
const at::Tensor& Value::tensor() const {
  if (kind_ != Kind::Tensor) wrongKind("a tensor");
  return tensor_;
}
const StorageRef& Value::storage() const {
  if (kind_ != Kind::Storage) wrongKind("a storage");
  return *storage_;
}

void Value::setText(std::string text) {
  text_ = std::move(text);
  if (kind_ == Kind::String) text_hash_ = std::hash<std::string_view>{}(text_);
}

bool Value::indexable() const {
  return kind_ == Kind::String || kind_ == Kind::Int || kind_ == Kind::Bool || kind_ == Kind::None;
}

size_t Value::KeyHash::operator()(const Value* v) const {
  switch (v->kind_) {
    case Kind::String: return v->text_hash_;
    case Kind::Int: return std::hash<int64_t>{}(v->int_);
    case Kind::Bool: return std::hash<int64_t>{}(v->bool_ ? 1 : 0);  // True == 1 in Python
    default: return 0x9e3779b9u;                                     // None
  }
}
size_t Value::KeyHash::operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }

bool Value::KeyEqual::operator()(const Value* a, const Value* b) const {
  if (a == b) return true;
  const bool aString = a->kind_ == Kind::String, bString = b->kind_ == Kind::String;
  if (aString || bString) return aString && bString && a->text_ == b->text_;
  if (a->kind_ == Kind::None || b->kind_ == Kind::None) return a->kind_ == b->kind_;
  return (a->kind_ == Kind::Bool ? a->bool_ : a->int_) == (b->kind_ == Kind::Bool ? b->bool_ : b->int_);
}
bool Value::KeyEqual::operator()(std::string_view a, const Value* b) const {
  return b->kind_ == Kind::String && b->text_ == a;
}

std::string Value::describe() const {
  std::ostringstream s;
  switch (kind_) {
    case Kind::None: return "None";
    case Kind::Bool: return bool_ ? "True" : "False";
    case Kind::Int: return "int " + std::to_string(int_);
    case Kind::BigInt: return "int of " + std::to_string(text_.size()) + " bytes";
    case Kind::Float: s << "float " << float_; return s.str();
    case Kind::String: return "string '" + printable(text_, 60) + "'";
    case Kind::Bytes: return "bytes of length " + std::to_string(text_.size());
    case Kind::Tuple:
    case Kind::List:
    case Kind::Dict: {
      const size_t n = kind_ == Kind::Dict ? items_.size() : elements_.size();
      return std::string(kindName(kind_)) + " of " + std::to_string(n) + (n == 1 ? " item" : " items");
    }
    case Kind::Global: return "global " + printable(qualifiedName());
    case Kind::Object: return "object " + printable(qualifiedName()) + "(…)";
    case Kind::Storage:
      return "storage " + printable(storage_->type) + " '" + printable(storage_->key) + "' of " +
             std::to_string(storage_->numel) + " elements";
    case Kind::Tensor: {
      if (!tensor_.defined()) return "undefined tensor";
      s << "tensor " << c10::toString(tensor_.scalar_type()) << " " << tensor_.sizes();
      return s.str();
    }
  }
  return kindName(kind_);
}

// ---------------------------------------------------------------------------------------------------
// The machine

class Machine {
 public:
  Machine(std::span<const uint8_t> bytes, const std::string& source, const UnpickleHooks& hooks, size_t offset)
      : bytes_(bytes), source_(source), hooks_(hooks), pos_(offset) {
    // Every opcode makes at most one value, and every opcode takes at least one byte.
    max_values_ = (offset < bytes.size() ? bytes.size() - offset : 0) + 16;
  }

  Unpickled run();

 private:
  using Mut = std::shared_ptr<Value>;

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(source_ + ": corrupt pickle: " + what + " (opcode " + hexByte(op_) + " at byte " +
                std::to_string(op_pos_) + ")");
  }
  const uint8_t* need(uint64_t n) {
    const uint64_t left = bytes_.size() - pos_;
    if (n > left)
      throw Error(source_ + ": truncated pickle: opcode " + hexByte(op_) + " at byte " + std::to_string(op_pos_) +
                  " needs " + std::to_string(n) + " bytes, only " + std::to_string(left) + " remain");
    const uint8_t* p = bytes_.data() + pos_;
    pos_ += static_cast<size_t>(n);
    return p;
  }
  uint64_t readLE(int n) {
    const uint8_t* p = need(static_cast<uint64_t>(n));
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
  }
  std::string readText(uint64_t n) {
    const uint8_t* p = need(n);
    return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
  }
  std::string readLine() {
    const uint8_t* start = bytes_.data() + pos_;
    const void* nl = std::memchr(start, '\n', bytes_.size() - pos_);
    if (!nl)
      throw Error(source_ + ": truncated pickle: opcode " + hexByte(op_) + " at byte " + std::to_string(op_pos_) +
                  " has no end of line");
    const size_t len = static_cast<const uint8_t*>(nl) - start;
    pos_ += len + 1;
    return std::string(reinterpret_cast<const char*>(start), len);
  }

  Mut make(Value::Kind k) {
    if (++created_ > max_values_) fail("more values than the input has bytes");
    return Value::make(k);
  }
  static Mut mut(const ValuePtr& v) { return std::const_pointer_cast<Value>(v); }  // all Values are made non-const

  size_t frameBase() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(Mut v) { stack_.push_back(std::move(v)); }
  Mut pop() {
    if (stack_.size() <= frameBase()) fail("stack underflow");
    Mut v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  Mut& top() {
    if (stack_.size() <= frameBase()) fail("stack underflow");
    return stack_.back();
  }
  std::vector<Mut> popMark() {
    if (marks_.empty()) fail("no MARK before it");
    const size_t base = marks_.back();
    marks_.pop_back();
    std::vector<Mut> items(std::make_move_iterator(stack_.begin() + static_cast<std::ptrdiff_t>(base)),
                           std::make_move_iterator(stack_.end()));
    stack_.resize(base);
    return items;
  }

  /// Checks that `parent` may still change and records `child` as its element: the child is sealed
  /// (a pickle that changes a container after placing it elsewhere is refused, which rules out cycles)
  /// and the parent's depth grows, so the depth limit holds for the whole tree at all times.
  void adopt(Value& parent, const Mut& child) {
    if (parent.sealed_) fail("the pickle changes a " + std::string(kindName(parent.kind_)) +
                             " after placing it in another container (recursive structures are not supported)");
    if (&parent == child.get()) fail("the pickle puts a " + std::string(kindName(parent.kind_)) + " inside itself");
    if (child->kind_ == Value::Kind::List || child->kind_ == Value::Kind::Dict ||
        child->kind_ == Value::Kind::Object)
      child->sealed_ = true;
    if (child->depth_ + 1 > parent.depth_) {
      if (child->depth_ + 1 > kMaxDepth)
        fail("containers nest deeper than " + std::to_string(kMaxDepth) + " levels");
      parent.depth_ = child->depth_ + 1;
    }
  }
  Mut container(Value::Kind k, std::vector<Mut> items) {
    Mut c = make(k);
    c->elements_.reserve(items.size());
    for (auto& v : items) {
      adopt(*c, v);
      c->elements_.push_back(std::move(v));
    }
    return c;
  }
  void setItem(Value& dict, Mut key, Mut value) {
    adopt(dict, key);
    adopt(dict, value);
    if (key->indexable()) {
      auto [it, inserted] = dict.index_.emplace(key.get(), dict.items_.size());
      if (!inserted) {  // a key set again keeps its place and its first key object
        dict.items_[it->second].second = std::move(value);
        return;
      }
    }
    dict.items_.emplace_back(std::move(key), std::move(value));
  }
  Value& dictOnTop() {
    Mut& d = top();
    if (d->kind_ != Value::Kind::Dict) fail("SETITEM on " + d->describe() + ", not a dict");
    return *d;
  }
  Value& listOnTop() {
    Mut& l = top();
    if (l->kind_ != Value::Kind::List) fail("APPEND on " + l->describe() + ", not a list");
    return *l;
  }
  void memoPut(uint64_t index) {
    if (memo_.size() >= max_values_) fail("memo too large");
    memo_[index] = top();
  }
  void memoGet(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) fail("memo entry " + std::to_string(index) + " was never stored");
    push(it->second);
  }
  void pushInt(int64_t v) {
    Mut p = make(Value::Kind::Int);
    p->int_ = v;
    push(std::move(p));
  }
  void pushText(Value::Kind k, uint64_t n) {
    Mut p = make(k);
    p->setText(readText(n));
    push(std::move(p));
  }
  void pushLong(uint64_t n);
  void call(Mut callable, Mut args);

  std::span<const uint8_t> bytes_;
  const std::string& source_;
  const UnpickleHooks& hooks_;
  size_t pos_;
  size_t op_pos_ = 0;
  uint8_t op_ = 0;
  size_t created_ = 0;
  size_t max_values_ = 0;
  std::vector<Mut> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Mut> memo_;
};

void Machine::pushLong(uint64_t n) {
  const uint8_t* p = need(n);
  // Little-endian two's complement; int64 when it fits after dropping redundant sign bytes.
  uint64_t len = n;
  while (len > 1 && ((p[len - 1] == 0x00 && !(p[len - 2] & 0x80)) || (p[len - 1] == 0xff && (p[len - 2] & 0x80))))
    --len;
  if (len <= 8) {
    uint64_t v = 0;
    for (uint64_t i = len; i-- > 0;) v = (v << 8) | p[i];
    if (len > 0 && len < 8 && (p[len - 1] & 0x80)) v |= ~uint64_t{0} << (8 * len);  // sign-extend
    pushInt(static_cast<int64_t>(v));
    return;
  }
  Mut big = make(Value::Kind::BigInt);
  big->text_.assign(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
  push(std::move(big));
}

void Machine::call(Mut callable, Mut args) {
  if (callable->kind_ != Value::Kind::Global) fail("a call of " + callable->describe() + ", not of a global");
  if (args->kind_ != Value::Kind::Tuple) fail("call arguments are " + args->describe() + ", not a tuple");
  if (hooks_.reduce) {
    if (ValuePtr r = hooks_.reduce(*callable, args)) {
      push(mut(r));
      return;
    }
  }
  Mut obj = make(Value::Kind::Object);
  adopt(*obj, args);
  obj->callable_ = std::move(callable);
  obj->args_ = std::move(args);
  push(std::move(obj));
}

Unpickled Machine::run() {
  const size_t n = bytes_.size();
  while (pos_ < n) {
    op_pos_ = pos_;
    op_ = bytes_[pos_++];
    switch (op_) {
      case 0x80: {  // PROTO
        const uint64_t proto = readLE(1);
        if (proto > 5) fail("pickle protocol " + std::to_string(proto) + " is newer than 5");
        break;
      }
      case 0x95: {  // FRAME: a length prefix only; the opcodes inside are read as usual
        const uint64_t len = readLE(8);
        if (len > n - pos_)
          throw Error(source_ + ": truncated pickle: a frame of " + std::to_string(len) + " bytes at byte " +
                      std::to_string(op_pos_) + " runs past the end");
        break;
      }
      case '.': {  // STOP
        Mut v = pop();
        return Unpickled{std::move(v), pos_};
      }
      case '(': marks_.push_back(stack_.size()); break;  // MARK
      case '0': {                                         // POP
        if (stack_.size() > frameBase()) stack_.pop_back();
        else popMark();
        break;
      }
      case '1': popMark(); break;  // POP_MARK
      case '2': push(top()); break;  // DUP
      case 'N': push(make(Value::Kind::None)); break;
      case 0x88:
      case 0x89: {  // NEWTRUE, NEWFALSE
        Mut b = make(Value::Kind::Bool);
        b->bool_ = op_ == 0x88;
        push(std::move(b));
        break;
      }
      case 'J': pushInt(static_cast<int32_t>(static_cast<uint32_t>(readLE(4)))); break;  // BININT
      case 'K': pushInt(static_cast<int64_t>(readLE(1))); break;                         // BININT1
      case 'M': pushInt(static_cast<int64_t>(readLE(2))); break;                         // BININT2
      case 0x8a: pushLong(readLE(1)); break;                                             // LONG1
      case 0x8b: {                                                                       // LONG4
        const auto len = static_cast<int32_t>(static_cast<uint32_t>(readLE(4)));
        if (len < 0) fail("negative length");
        pushLong(static_cast<uint64_t>(len));
        break;
      }
      case 'G': {  // BINFLOAT, big-endian
        const uint8_t* p = need(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];
        Mut f = make(Value::Kind::Float);
        f->float_ = std::bit_cast<double>(bits);
        push(std::move(f));
        break;
      }
      case 'X': pushText(Value::Kind::String, readLE(4)); break;   // BINUNICODE
      case 0x8c: pushText(Value::Kind::String, readLE(1)); break;  // SHORT_BINUNICODE
      case 0x8d: pushText(Value::Kind::String, readLE(8)); break;  // BINUNICODE8
      case 'U': pushText(Value::Kind::String, readLE(1)); break;   // SHORT_BINSTRING (Python 2 str)
      case 'T': {                                                  // BINSTRING
        const auto len = static_cast<int32_t>(static_cast<uint32_t>(readLE(4)));
        if (len < 0) fail("negative length");
        pushText(Value::Kind::String, static_cast<uint64_t>(len));
        break;
      }
      case 'B': pushText(Value::Kind::Bytes, readLE(4)); break;    // BINBYTES
      case 'C': pushText(Value::Kind::Bytes, readLE(1)); break;    // SHORT_BINBYTES
      case 0x8e: pushText(Value::Kind::Bytes, readLE(8)); break;   // BINBYTES8
      case 0x96: pushText(Value::Kind::Bytes, readLE(8)); break;   // BYTEARRAY8
      case ')': push(make(Value::Kind::Tuple)); break;             // EMPTY_TUPLE
      case ']': push(make(Value::Kind::List)); break;              // EMPTY_LIST
      case '}': push(make(Value::Kind::Dict)); break;              // EMPTY_DICT
      case 't': push(container(Value::Kind::Tuple, popMark())); break;  // TUPLE
      case 'l': push(container(Value::Kind::List, popMark())); break;   // LIST
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1, TUPLE2, TUPLE3
        const size_t k = op_ - 0x84u;
        std::vector<Mut> items(k);
        for (size_t i = k; i-- > 0;) items[i] = pop();
        push(container(Value::Kind::Tuple, std::move(items)));
        break;
      }
      case 'a': {  // APPEND
        Mut v = pop();
        Value& list = listOnTop();
        adopt(list, v);
        list.elements_.push_back(std::move(v));
        break;
      }
      case 'e': {  // APPENDS
        std::vector<Mut> items = popMark();
        Value& list = listOnTop();
        for (auto& v : items) {
          adopt(list, v);
          list.elements_.push_back(std::move(v));
        }
        break;
      }
      case 'd': {  // DICT
        std::vector<Mut> items = popMark();
        if (items.size() % 2) fail("an odd number of items for a dict");
        Mut d = make(Value::Kind::Dict);
        for (size_t i = 0; i < items.size(); i += 2) setItem(*d, std::move(items[i]), std::move(items[i + 1]));
        push(std::move(d));
        break;
      }
      case 's': {  // SETITEM
        Mut v = pop();
        Mut k = pop();
        setItem(dictOnTop(), std::move(k), std::move(v));
        break;
      }
      case 'u': {  // SETITEMS
        std::vector<Mut> items = popMark();
        if (items.size() % 2) fail("an odd number of items for a dict");
        Value& d = dictOnTop();
        for (size_t i = 0; i < items.size(); i += 2) setItem(d, std::move(items[i]), std::move(items[i + 1]));
        break;
      }
      case 'q': memoPut(readLE(1)); break;           // BINPUT
      case 'r': memoPut(readLE(4)); break;           // LONG_BINPUT
      case 0x94: memoPut(memo_.size()); break;       // MEMOIZE
      case 'h': memoGet(readLE(1)); break;           // BINGET
      case 'j': memoGet(readLE(4)); break;           // LONG_BINGET
      case 'c': {                                    // GLOBAL
        std::string module = readLine();
        std::string name = readLine();
        Mut g = make(Value::Kind::Global);
        g->text_ = std::move(module);
        g->name_ = std::move(name);
        push(std::move(g));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        Mut name = pop();
        Mut module = pop();
        if (name->kind_ != Value::Kind::String || module->kind_ != Value::Kind::String)
          fail("STACK_GLOBAL of " + module->describe() + " and " + name->describe());
        Mut g = make(Value::Kind::Global);
        g->text_ = module->text_;
        g->name_ = name->text_;
        push(std::move(g));
        break;
      }
      case 'R':     // REDUCE: callable(*args)
      case 0x81: {  // NEWOBJ: cls.__new__(cls, *args)
        Mut args = pop();
        Mut callable = pop();
        call(std::move(callable), std::move(args));
        break;
      }
      case 'b': {  // BUILD
        Mut state = pop();
        Mut& target = top();
        if (target->kind_ == Value::Kind::Dict) break;  // OrderedDict's _metadata: not needed
        if (target->kind_ != Value::Kind::Object) fail("BUILD on " + target->describe());
        adopt(*target, state);
        target->state_ = std::move(state);
        break;
      }
      case 'Q': {  // BINPERSID
        Mut pid = pop();
        if (!hooks_.persistent_load) fail("a persistent id, but this file may not have any");
        if (pid->kind_ == Value::Kind::List || pid->kind_ == Value::Kind::Dict || pid->kind_ == Value::Kind::Object)
          pid->sealed_ = true;
        ValuePtr v = hooks_.persistent_load(pid);
        if (!v) fail("unresolved persistent id " + pid->describe());
        push(mut(v));
        break;
      }
      default: {
        std::string shown;
        if (op_ >= 0x21 && op_ < 0x7f) shown = std::string(" ('") + static_cast<char>(op_) + "')";
        throw Error(source_ + ": not a PyTorch checkpoint: pickle opcode " + hexByte(op_) + shown + " at byte " +
                    std::to_string(op_pos_) + " is not supported");
      }
    }
  }
  throw Error(source_ + ": truncated pickle: it ends at byte " + std::to_string(n) + " without a STOP opcode");
}

Unpickled unpickle(std::span<const uint8_t> bytes, const std::string& source, const UnpickleHooks& hooks,
                   size_t offset) {
  if (offset >= bytes.size())
    throw Error(source + ": truncated: a pickle should start at byte " + std::to_string(offset) + " but the data ends");
  Machine m(bytes, source, hooks, offset);
  return m.run();
}

}  // namespace automod::pickle
