#include "meshlm/train/metrics_log.hpp"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <string>

#include "meshlm/core/error.hpp"

namespace meshlm {

MetricsLog::MetricsLog(const std::filesystem::path& path) : f_(std::fopen(path.c_str(), "a")) {
  if (!f_) throw UserError(cat("cannot open ", path.string(), ": ", std::strerror(errno)));
}

MetricsLog::~MetricsLog() {
  if (f_) std::fclose(f_);
}

void MetricsLog::step(const StepStats& s) {
  if (!f_) return;
  // JSON has no inf: an overflowed (skipped) fp16 step's norm is written as null.
  const std::string norm = std::isfinite(s.grad_norm) ? cat(s.grad_norm) : "null";
  std::fprintf(f_, "{\"step\": %lld, \"loss\": %.6g, \"lr\": %.6g, \"grad_norm\": %s, \"tokens_per_s\": %.1f, \"ms\": %.3f, \"comm_ms\": %.3f, \"tp_allreduce_bytes\": %lld",
               (long long)s.step, s.loss, s.lr, norm.c_str(), s.tokens_per_s, s.ms, s.comm_ms,
               (long long)s.tp_allreduce_bytes);
  if (!s.pipe_idle.empty()) {
    std::fprintf(f_, ", \"pipe_idle\": [");
    for (size_t i = 0; i < s.pipe_idle.size(); ++i) std::fprintf(f_, "%s%.4f", i ? ", " : "", s.pipe_idle[i]);
    std::fprintf(f_, "]");
  }
  if (s.loss_scale > 0)
    std::fprintf(f_, ", \"loss_scale\": %.9g, \"skipped\": %s", double(s.loss_scale), s.skipped ? "true" : "false");
  std::fprintf(f_, "}\n");
  std::fflush(f_);
}

void MetricsLog::eval(const EvalStats& e, bool best) {
  if (!f_) return;
  std::fprintf(f_, "{\"step\": %lld, \"val_loss\": %.6g, \"val_ppl\": %.6g, \"val_tokens\": %lld, \"best\": %s}\n",
               (long long)e.step, e.loss, std::exp(double(e.loss)), (long long)e.tokens, best ? "true" : "false");
  std::fflush(f_);
}

}  // namespace meshlm
