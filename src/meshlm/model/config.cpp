#include "meshlm/model/config.hpp"

#include <cmath>

#include "meshlm/core/error.hpp"
#include "meshlm/model/memory_estimate.hpp"

namespace meshlm {

void GPTConfig::validate() const {
  auto positive = [](const char* name, int64_t v) {
    if (v <= 0) throw UserError(cat("model.", name, " must be positive, got ", v));
  };
  positive("vocab_size", vocab_size);
  positive("n_positions", n_positions);
  positive("n_embd", n_embd);
  positive("n_layer", n_layer);
  positive("n_head", n_head);
  if (n_embd % n_head != 0)
    throw UserError(cat("model.n_embd (", n_embd, ") must be divisible by model.n_head (", n_head, ")"));
  if (vocab_size > (int64_t(1) << 31) - 1) throw UserError(cat("model.vocab_size ", vocab_size, " is too large"));
  // Every shape product and offset is an int64/size_t: a shape whose parameter count nears
  // their range is refused here, so that none of them can overflow.
  if (gpt_parameter_count(*this) > kMaxParameterCount)
    throw UserError(cat("the model is too large: model.n_layer ", n_layer, ", model.n_embd ", n_embd, ", model.n_positions ",
                        n_positions, " and model.vocab_size ", vocab_size, " make more than 2^50 parameters"));
  if (!(layer_norm_epsilon > 0.0f) || !std::isfinite(layer_norm_epsilon))
    throw UserError(cat("model.layer_norm_epsilon must be a positive number, got ", layer_norm_epsilon));
  if (!(dropout >= 0.0f && dropout < 1.0f))
    throw UserError(cat("model.dropout must be in [0, 1), got ", dropout));
}

}  // namespace meshlm
