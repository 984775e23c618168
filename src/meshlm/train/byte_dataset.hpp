#pragma once
// The bytes of a text file as tokens (vocabulary 256), split into a training part and a
// held-out validation tail. Batches are random windows whose offsets depend only on
// (seed, split, step, micro-batch, row): the same run always sees the same data.
#include <cstdint>
#include <filesystem>
#include <string>

namespace meshlm {

enum class Split : uint8_t { train, val };

class ByteDataset {
 public:
  // Throws UserError if the file is missing, empty, or too short for `block_size`.
  ByteDataset(const std::filesystem::path& path, double val_fraction, int64_t block_size);

  int64_t size(Split s) const { return s == Split::train ? n_train_ : int64_t(bytes_.size()) - n_train_; }
  // Fills inputs[B,T] and targets[B,T] (= inputs shifted by one) for micro-batch `micro` of `step`.
  void batch(Split split, uint64_t seed, int64_t step, int64_t micro, int64_t B, int64_t T, int32_t* inputs,
             int32_t* targets) const;

 private:
  std::string bytes_;
  int64_t n_train_ = 0;
};

}  // namespace meshlm
