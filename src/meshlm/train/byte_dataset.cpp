#include "meshlm/train/byte_dataset.hpp"

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/core/rng.hpp"

namespace meshlm {

ByteDataset::ByteDataset(const std::filesystem::path& path, double val_fraction, int64_t block_size)
    : bytes_(read_file(path, "data file")) {
  if (bytes_.empty()) throw UserError(cat("data file is empty: ", path.string()));
  const int64_t n = int64_t(bytes_.size());
  n_train_ = n - int64_t(double(n) * val_fraction);
  if (n_train_ < block_size + 1 || n - n_train_ < block_size + 1)
    throw UserError(cat("data file ", path.string(), " has ", n, " bytes: too short for block size ", block_size,
                        " with validation fraction ", val_fraction, " (each part needs at least ", block_size + 1,
                        " bytes)"));
}

void ByteDataset::batch(Split split, uint64_t seed, int64_t step, int64_t micro, int64_t B, int64_t T,
                        int32_t* inputs, int32_t* targets) const {
  const int64_t begin = split == Split::train ? 0 : n_train_;
  const int64_t windows = size(split) - T;  // valid start offsets: [0, windows)
  const uint64_t stream = stream_of(split == Split::train ? "batch.train" : "batch.val");
  const auto* data = reinterpret_cast<const unsigned char*>(bytes_.data()) + begin;
  for (int64_t b = 0; b < B; ++b) {
    const uint64_t index = (uint64_t(step) << 32) ^ (uint64_t(micro) << 16) ^ uint64_t(b);
    const int64_t off = int64_t(uniform_at(seed, stream, index) * double(windows));
    for (int64_t t = 0; t < T; ++t) {
      inputs[b * T + t] = data[off + t];
      targets[b * T + t] = data[off + t + 1];
    }
  }
}

}  // namespace meshlm
