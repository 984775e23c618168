#pragma once
// The safetensors file format (Hugging Face): an 8-byte little-endian header length N,
// N bytes of JSON describing each tensor's dtype, shape and byte range, then the raw
// little-endian tensor data. The reader treats every file as untrusted: it validates the
// whole header before handing out a single byte, so a truncated or corrupt file is a
// UserError naming the file, never a crash or an out-of-bounds read.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "meshlm/core/dtype.hpp"

namespace meshlm {

// Every dtype the format defines, so that files holding tensors meshlm never computes with
// (a bool attention mask, int64 ids) still open.
enum class SafetensorsDType : uint8_t { BOOL, U8, I8, F8_E4M3, F8_E5M2, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64 };

size_t safetensors_dtype_size(SafetensorsDType t);
std::string_view safetensors_dtype_name(SafetensorsDType t);  // "F32", "BF16", ...
std::optional<SafetensorsDType> parse_safetensors_dtype(std::string_view name);
SafetensorsDType to_safetensors_dtype(DType t);

// One tensor to write. `data` points at numel(shape) * size(dtype) bytes in host memory.
struct TensorRef {
  TensorRef(std::string name, SafetensorsDType dtype, std::vector<int64_t> shape, const void* data)
      : name(std::move(name)), dtype(dtype), shape(std::move(shape)), data(data) {}
  TensorRef(std::string name, DType dtype, std::vector<int64_t> shape, const void* data)
      : TensorRef(std::move(name), to_safetensors_dtype(dtype), std::move(shape), data) {}

  std::string name;
  SafetensorsDType dtype;
  std::vector<int64_t> shape;
  const void* data;
};

// Writes the tensors, laid out in the order given, atomically (temp file + fsync + rename):
// on failure the previous file, if any, is untouched and no partial file remains.
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

struct SafetensorsEntry {
  std::string name;
  SafetensorsDType dtype;
  std::vector<int64_t> shape;
  size_t numel = 0;
  size_t begin = 0, end = 0;  // byte range inside the data section
};

// The most tensors a header may describe when the reader knows nothing of the model: a GPT-2
// with a thousand layers has about 12,000 parameters (and its optimizer state twice as many).
inline constexpr size_t kMaxSafetensorsTensors = 65536;

// A validated, read-only view of a safetensors file (memory-mapped, so the file must not be
// truncated while it is open; move-only).
class SafetensorsFile {
 public:
  // Throws UserError naming the file if it is missing, unreadable or malformed in any way, or
  // if its header describes more than `max_tensors` tensors (a caller that knows the model
  // passes the count it expects, so that a hostile header is refused before it is parsed).
  explicit SafetensorsFile(const std::filesystem::path& path, size_t max_tensors = kMaxSafetensorsTensors);
  ~SafetensorsFile();
  SafetensorsFile(SafetensorsFile&& o) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& o) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // Tensor names in the order their data appears in the file.
  std::vector<std::string> names() const;
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  // The accessors below throw UserError if the file has no tensor called `name`.
  const SafetensorsEntry& entry(const std::string& name) const;
  SafetensorsDType dtype(const std::string& name) const { return entry(name).dtype; }
  const std::vector<int64_t>& shape(const std::string& name) const { return entry(name).shape; }
  std::span<const std::byte> bytes(const std::string& name) const;
  // Converts an F32, F16 or BF16 tensor to f32; out.size() must equal its element count.
  void read_as_f32(const std::string& name, std::span<float> out) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  void parse_header(std::string_view header);
  void unmap() noexcept;

  std::filesystem::path path_;
  std::byte* map_ = nullptr;  // the whole file, mapped read-only (PROT_READ)
  size_t map_size_ = 0;
  const std::byte* data_ = nullptr;  // the data section, after the header
  size_t data_size_ = 0;
  std::vector<SafetensorsEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  size_t max_tensors_ = kMaxSafetensorsTensors;
};

// "[768, 2304]": how shapes appear in error messages.
std::string format_shape(std::span<const int64_t> shape);

}  // namespace meshlm
