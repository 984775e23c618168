#pragma once
// Named views of GPT-2's tensors inside a flat parameter or gradient buffer. Each tensor's
// offset is looked up by name once, from the layout (GPTParamOffsets); a view is then the
// buffer's base plus that offset, so the forward and backward passes form their views per call
// without any name lookup. Views of a const buffer are const (T = const float), of a mutable
// one mutable (T = float).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "meshlm/model/config.hpp"
#include "meshlm/model/param_spec.hpp"

namespace meshlm {

// One transformer block's tensors: Slot is a view (float* or const float*) or an offset (size_t).
template <class Slot>
struct BlockTensors {
  Slot ln1_w, ln1_b, qkv_w, qkv_b, attproj_w, attproj_b;
  Slot ln2_w, ln2_b, fc_w, fc_b, fcproj_w, fcproj_b;
};
// The tensors before and after the blocks.
template <class Slot>
struct OuterTensors {
  Slot wte, wpe, lnf_w, lnf_b;
};
template <class T>
using BlockParams = BlockTensors<T*>;
template <class T>
using OuterParams = OuterTensors<T*>;  // null where the stage does not hold the tensor

class GPTParamOffsets {
 public:
  // The offsets of a stage's tensors in `layout` (gpt_param_specs of that stage).
  GPTParamOffsets(const ParamLayout& layout, const GPTConfig& cfg, const StageSpec& stage = StageSpec::whole());

  // Block `l` of the stage (0 = its first layer) inside the buffer at `base`.
  template <class T>
  BlockParams<T> block(T* base, int64_t l) const {
    const BlockTensors<size_t>& o = blocks_[size_t(l)];
    return {base + o.ln1_w, base + o.ln1_b, base + o.qkv_w, base + o.qkv_b, base + o.attproj_w, base + o.attproj_b,
            base + o.ln2_w, base + o.ln2_b, base + o.fc_w, base + o.fc_b, base + o.fcproj_w, base + o.fcproj_b};
  }
  template <class T>
  OuterParams<T> outer(T* base) const {
    auto at = [base](size_t offset) -> T* { return offset == kAbsent ? nullptr : base + offset; };
    return {at(outer_.wte), at(outer_.wpe), at(outer_.lnf_w), at(outer_.lnf_b)};
  }

 private:
  static constexpr size_t kAbsent = size_t(-1);
  OuterTensors<size_t> outer_;
  std::vector<BlockTensors<size_t>> blocks_;  // the stage's blocks, from its first layer
};

}  // namespace meshlm
