#include "meshlm/model/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <unordered_set>
#include <utility>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/error.hpp"

namespace meshlm {

namespace fs = std::filesystem;
using nlohmann::json;

// Tensor bytes are copied straight between memory and file.
static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

namespace {

// Real headers are kilobytes; anything this large is corruption, not a model.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DTypeInfo {
  SafetensorsDType dtype;
  std::string_view name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {SafetensorsDType::BOOL, "BOOL", 1},       {SafetensorsDType::U8, "U8", 1},
    {SafetensorsDType::I8, "I8", 1},           {SafetensorsDType::F8_E4M3, "F8_E4M3", 1},
    {SafetensorsDType::F8_E5M2, "F8_E5M2", 1}, {SafetensorsDType::I16, "I16", 2},
    {SafetensorsDType::U16, "U16", 2},         {SafetensorsDType::F16, "F16", 2},
    {SafetensorsDType::BF16, "BF16", 2},       {SafetensorsDType::I32, "I32", 4},
    {SafetensorsDType::U32, "U32", 4},         {SafetensorsDType::F32, "F32", 4},
    {SafetensorsDType::I64, "I64", 8},         {SafetensorsDType::U64, "U64", 8},
    {SafetensorsDType::F64, "F64", 8},
};

const DTypeInfo& info_of(SafetensorsDType t) {
  for (const auto& d : kDTypes)
    if (d.dtype == t) return d;
  MESHLM_ASSERT(false, "unknown SafetensorsDType ", int(t));
  return kDTypes[0];
}

// A name from an untrusted file, quoted and escaped, and cut short so that a hostile
// header cannot blow up an error message.
std::string quote_name(std::string_view s) {
  constexpr size_t kMax = 80;
  const bool cut = s.size() > kMax;
  std::string q = json(std::string(s.substr(0, kMax))).dump(-1, ' ', false, json::error_handler_t::replace);
  return cut ? q + "..." : q;
}

// What the first pass over a header finds: whether it is JSON, whether its top-level object
// holds more tensors than the cap, and the first name that appears twice.
struct TopLevelKeys {
  bool valid_json = true;
  bool over_cap = false;
  std::optional<std::string> duplicate;
};

// Watches the keys of the top-level object (depth 1) and stops the parse at the first
// repeated name or the first tensor beyond the cap.
class TopLevelKeyScanner : public nlohmann::json_sax<json> {
 public:
  explicit TopLevelKeyScanner(size_t max_tensors) : max_tensors_(max_tensors) {}
  TopLevelKeys result;

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return ++depth_, true; }
  bool end_object() override { return --depth_, true; }
  bool start_array(std::size_t) override { return ++depth_, true; }
  bool end_array() override { return --depth_, true; }
  bool key(string_t& k) override {
    if (depth_ != 1) return true;
    if (k != "__metadata__" && ++tensors_ > max_tensors_) {
      result.over_cap = true;
      return false;
    }
    if (!seen_.insert(k).second) {
      result.duplicate = k;
      return false;
    }
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    result.valid_json = false;
    return false;
  }

 private:
  size_t max_tensors_;
  size_t tensors_ = 0;
  int depth_ = 0;
  std::unordered_set<std::string> seen_;
};

TopLevelKeys scan_top_level_keys(std::string_view text, size_t max_tensors) {
  TopLevelKeyScanner scanner(max_tensors);
  json::sax_parse(text.begin(), text.end(), &scanner, json::input_format_t::json, /*strict=*/true);
  return scanner.result;
}

[[noreturn]] void throw_corrupt(const fs::path& path, const std::string& problem) {
  throw UserError(cat("safetensors file ", path.string(), " is corrupt: ", problem));
}

}  // namespace

size_t safetensors_dtype_size(SafetensorsDType t) { return info_of(t).size; }
std::string_view safetensors_dtype_name(SafetensorsDType t) { return info_of(t).name; }

std::optional<SafetensorsDType> parse_safetensors_dtype(std::string_view name) {
  for (const auto& d : kDTypes)
    if (d.name == name) return d.dtype;
  return std::nullopt;
}

SafetensorsDType to_safetensors_dtype(DType t) {
  switch (t) {
    case DType::f32: return SafetensorsDType::F32;
    case DType::bf16: return SafetensorsDType::BF16;
    case DType::f16: return SafetensorsDType::F16;
    case DType::i32: return SafetensorsDType::I32;
    case DType::u16: return SafetensorsDType::U16;
  }
  MESHLM_ASSERT(false, "unknown DType ", int(t));
  return SafetensorsDType::F32;
}

std::string format_shape(std::span<const int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += cat(i ? ", " : "", shape[i]);
  return s + "]";
}

// ---------------------------------------------------------------------------------------
// Writer

void write_safetensors(const fs::path& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps the header in the order the tensors are laid out.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  std::vector<size_t> byte_sizes;
  std::unordered_set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    MESHLM_ASSERT(t.name != "__metadata__", "a tensor cannot be called __metadata__");
    MESHLM_ASSERT(seen.insert(t.name).second, "tensor ", t.name, " is written twice to ", path.string());
    size_t numel = 1;
    for (int64_t d : t.shape) {
      MESHLM_ASSERT(d >= 0, "tensor ", t.name, " has negative dimension ", d);
      numel *= size_t(d);
    }
    const size_t bytes = numel * safetensors_dtype_size(t.dtype);
    MESHLM_ASSERT(bytes == 0 || t.data != nullptr, "tensor ", t.name, " has no data");
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["dtype"] = std::string(safetensors_dtype_name(t.dtype));
    entry["shape"] = t.shape;
    entry["data_offsets"] = nlohmann::ordered_json::array({offset, offset + bytes});
    header[t.name] = std::move(entry);
    byte_sizes.push_back(bytes);
    offset += bytes;
  }

  std::string text;
  try {
    text = header.dump(-1, ' ', false, json::error_handler_t::strict);
  } catch (const json::exception&) {
    throw UserError(cat("cannot write ", path.string(), ": a tensor name or metadata entry is not valid UTF-8"));
  }
  // The format asks for the data section to start 8-byte aligned; spaces are valid JSON.
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t header_size = text.size();

  write_file_atomic(path, [&](int fd) {
    write_all(fd, &header_size, sizeof header_size, path.string());
    write_all(fd, text.data(), text.size(), path.string());
    for (size_t i = 0; i < tensors.size(); ++i) write_all(fd, tensors[i].data, byte_sizes[i], path.string());
  });
}

// ---------------------------------------------------------------------------------------
// Reader

SafetensorsFile::SafetensorsFile(const fs::path& path, size_t max_tensors) : path_(path), max_tensors_(max_tensors) {
  MESHLM_ASSERT(max_tensors > 0);
  const std::string where = path.string();
  std::error_code ec;
  if (!fs::exists(path, ec)) throw UserError(cat("safetensors file not found: ", where));
  if (fs::is_directory(path, ec)) throw UserError(cat("safetensors file ", where, " is a directory, not a file"));

  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw UserError(cat("cannot open safetensors file ", where, ": ", std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw UserError(cat("safetensors file ", where, " is not a regular file"));
  }
  const uint64_t file_size = uint64_t(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    throw UserError(cat("safetensors file ", where, " is truncated: it has ", file_size,
                        " bytes, fewer than the 8-byte header length"));
  }
  void* p = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (p == MAP_FAILED) throw UserError(cat("cannot map safetensors file ", where, ": ", std::strerror(map_errno)));
  map_ = static_cast<std::byte*>(p);
  map_size_ = file_size;

  try {
    uint64_t header_size;
    std::memcpy(&header_size, map_, 8);
    if (header_size > kMaxHeaderBytes)
      throw UserError(cat("safetensors file ", where, " is corrupt: its header length ", header_size,
                          " bytes is absurd (the limit is 100 MB)"));
    if (header_size > file_size - 8)
      throw UserError(cat("safetensors file ", where, " is truncated or corrupt: its header length ", header_size,
                          " bytes exceeds the ", file_size - 8, " bytes that follow it"));
    data_ = map_ + 8 + header_size;
    data_size_ = file_size - 8 - header_size;
    parse_header(std::string_view(reinterpret_cast<const char*>(map_ + 8), header_size));
  } catch (...) {
    unmap();
    throw;
  }
}

void SafetensorsFile::parse_header(std::string_view text) {
  auto fail = [&](const std::string& problem) { throw_corrupt(path_, problem); };

  // A first pass counts the tensors and catches repeated names (nlohmann::json keeps the last
  // of duplicate keys silently) without building anything, so that a hostile header with a
  // million entries is refused at the cap before any memory is spent on it. Both passes are
  // linear: a DOM parser callback would rescan the whole top-level object after each entry.
  const TopLevelKeys keys = scan_top_level_keys(text, max_tensors_);
  if (!keys.valid_json) fail("its header is not valid JSON");
  if (keys.over_cap)
    fail(cat("its header describes more than ", max_tensors_, " tensors, the most this file may hold",
             max_tensors_ == kMaxSafetensorsTensors ? "" : " for this model"));
  if (keys.duplicate) fail(cat("the name ", quote_name(*keys.duplicate), " appears twice in its header"));
  const json header = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) fail("its header is not valid JSON");
  if (!header.is_object()) fail("its header is not a JSON object");

  for (const auto& item : header.items()) {
    // Plain references, not a structured binding: the lambda below captures them (clang 14,
    // the fuzz build's compiler, cannot capture bindings).
    const std::string& name = item.key();
    const json& value = item.value();
    if (name == "__metadata__") {
      if (!value.is_object()) fail("__metadata__ is not a JSON object");
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string()) fail(cat("__metadata__ entry ", quote_name(k), " is not a string"));
        metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string tensor = cat("tensor ", quote_name(name));
    if (!value.is_object()) fail(cat(tensor, " is not described by a JSON object"));
    auto field = [&](const char* key) -> const json& {
      auto it = value.find(key);
      if (it == value.end()) fail(cat(tensor, " has no \"", key, "\" field"));
      return *it;
    };

    SafetensorsEntry e;
    e.name = name;
    const json& dtype = field("dtype");
    if (!dtype.is_string()) fail(cat(tensor, " has a dtype that is not a string"));
    const auto parsed_dtype = parse_safetensors_dtype(dtype.get_ref<const std::string&>());
    if (!parsed_dtype) fail(cat(tensor, " has unknown dtype ", quote_name(dtype.get_ref<const std::string&>())));
    e.dtype = *parsed_dtype;

    const json& shape = field("shape");
    if (!shape.is_array()) fail(cat(tensor, " has a shape that is not a JSON array"));
    // numel and byte counts are kept in u64 and checked for overflow at every step.
    uint64_t numel = 1;
    bool overflow = false, empty = false;
    for (const json& d : shape) {
      if (d.is_number_integer() && !d.is_number_unsigned()) fail(cat(tensor, " has a negative dimension in its shape"));
      if (!d.is_number_unsigned()) fail(cat(tensor, " has a shape dimension that is not an integer"));
      const uint64_t dim = d.get<uint64_t>();
      if (dim > uint64_t(INT64_MAX)) fail(cat(tensor, " has a shape dimension ", dim, " that is too large"));
      e.shape.push_back(int64_t(dim));
      overflow |= __builtin_mul_overflow(numel, dim, &numel);
      empty |= dim == 0;
    }
    if (empty) {  // a zero dimension empties the tensor however large the others are
      numel = 0;
      overflow = false;
    }
    uint64_t byte_length = 0;
    overflow |= __builtin_mul_overflow(numel, uint64_t(safetensors_dtype_size(e.dtype)), &byte_length);
    if (overflow) fail(cat(tensor, " has shape ", format_shape(e.shape), " whose size overflows"));

    const json& offsets = field("data_offsets");
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned())
      fail(cat(tensor, " has data_offsets that are not a pair of non-negative integers"));
    const uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
    if (end < begin) fail(cat(tensor, " has data_offsets [", begin, ", ", end, "] that end before they begin"));
    if (end > data_size_)
      fail(cat(tensor, " has data_offsets [", begin, ", ", end, "] beyond the ", data_size_,
               "-byte data section, so the file is truncated or corrupt"));
    if (end - begin != byte_length)
      fail(cat(tensor, " spans ", end - begin, " bytes but dtype ", safetensors_dtype_name(e.dtype), " and shape ",
               format_shape(e.shape), " need ", byte_length));
    e.numel = size_t(numel);
    e.begin = size_t(begin);
    e.end = size_t(end);
    entries_.push_back(std::move(e));
  }

  // Sorted by position, tensors must not overlap; names() then lists them in file order.
  std::stable_sort(entries_.begin(), entries_.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < entries_.size(); ++i)
    if (entries_[i].begin < entries_[i - 1].end)
      fail(cat("tensors ", quote_name(entries_[i - 1].name), " and ", quote_name(entries_[i].name), " overlap"));
  for (size_t i = 0; i < entries_.size(); ++i) index_.emplace(entries_[i].name, i);
}

void SafetensorsFile::unmap() noexcept {
  if (map_) ::munmap(map_, map_size_);
  map_ = nullptr;
  data_ = nullptr;
  map_size_ = data_size_ = 0;
}

SafetensorsFile::~SafetensorsFile() { unmap(); }

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept
    : path_(std::move(o.path_)),
      map_(std::exchange(o.map_, nullptr)),
      map_size_(std::exchange(o.map_size_, 0)),
      data_(std::exchange(o.data_, nullptr)),
      data_size_(std::exchange(o.data_size_, 0)),
      entries_(std::move(o.entries_)),
      index_(std::move(o.index_)),
      metadata_(std::move(o.metadata_)),
      max_tensors_(o.max_tensors_) {}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    unmap();
    path_ = std::move(o.path_);
    map_ = std::exchange(o.map_, nullptr);
    map_size_ = std::exchange(o.map_size_, 0);
    data_ = std::exchange(o.data_, nullptr);
    data_size_ = std::exchange(o.data_size_, 0);
    entries_ = std::move(o.entries_);
    index_ = std::move(o.index_);
    metadata_ = std::move(o.metadata_);
    max_tensors_ = o.max_tensors_;
  }
  return *this;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& e : entries_) out.push_back(e.name);
  return out;
}

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw UserError(cat("safetensors file ", path_.string(), " has no tensor ", quote_name(name)));
  return entries_[it->second];
}

std::span<const std::byte> SafetensorsFile::bytes(const std::string& name) const {
  const auto& e = entry(name);
  return {data_ + e.begin, e.end - e.begin};
}

void SafetensorsFile::read_as_f32(const std::string& name, std::span<float> out) const {
  const auto& e = entry(name);
  if (out.size() != e.numel)
    throw UserError(cat("tensor ", quote_name(name), " in ", path_.string(), " has ", e.numel, " elements (shape ",
                        format_shape(e.shape), ") where ", out.size(), " were expected"));
  const std::byte* src = data_ + e.begin;
  // Element-wise memcpy: the data section need not be aligned for the element type.
  auto convert_u16 = [&](auto to_f32) {
    for (size_t i = 0; i < e.numel; ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      out[i] = to_f32(h);
    }
  };
  switch (e.dtype) {
    case SafetensorsDType::F32:
      if (e.numel) std::memcpy(out.data(), src, e.numel * 4);
      return;
    case SafetensorsDType::F16: convert_u16([](uint16_t h) { return f16_to_f32(h); }); return;
    case SafetensorsDType::BF16: convert_u16([](uint16_t h) { return bf16_to_f32(h); }); return;
    default:
      throw UserError(cat("tensor ", quote_name(name), " in ", path_.string(), " has dtype ",
                          safetensors_dtype_name(e.dtype), ", which cannot be read as floats (expected F32, F16 or BF16)"));
  }
}

}  // namespace meshlm
