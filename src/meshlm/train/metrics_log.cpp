#include "meshlm/train/metrics_log.hpp"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <sstream>

#include <nlohmann/json.hpp>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/error.hpp"

namespace meshlm {

namespace fs = std::filesystem;

namespace {

std::string format(const char* fmt, auto... args) {
  std::string out(256, '\0');
  const int n = std::snprintf(out.data(), out.size(), fmt, args...);
  if (size_t(n) >= out.size()) {
    out.resize(size_t(n) + 1);
    std::snprintf(out.data(), out.size(), fmt, args...);
  }
  out.resize(size_t(n));
  return out;
}

}  // namespace

MetricsLog::MetricsLog(const fs::path& path) : path_(path), f_(std::fopen(path.c_str(), "a")) {
  if (!f_) throw UserError(cat("cannot open ", path.string(), ": ", std::strerror(errno)));
}

MetricsLog::~MetricsLog() {
  if (f_) std::fclose(f_);  // every line was flushed and checked already
}

void MetricsLog::append(const std::string& line) {
  errno = 0;
  const bool ok = std::fwrite(line.data(), 1, line.size(), f_) == line.size() && std::fflush(f_) == 0;
  if (ok) return;
  const int err = errno;
  std::clearerr(f_);
  throw UserError(cat("cannot write metrics to ", path_.string(), ": ", err ? std::strerror(err) : "write failed",
                      " (is the disk full?)"));
}

void MetricsLog::step(const StepStats& s) {
  if (!f_) return;
  // JSON has no inf: an overflowed (skipped) fp16 step's norm is written as null.
  const std::string norm = std::isfinite(s.grad_norm) ? cat(s.grad_norm) : "null";
  std::string line = format(
      "{\"step\": %lld, \"loss\": %.6g, \"lr\": %.6g, \"grad_norm\": %s, \"tokens_per_s\": %.1f, \"ms\": %.3f, \"comm_ms\": %.3f, \"tp_allreduce_bytes\": %lld",
      (long long)s.step, s.loss, s.lr, norm.c_str(), s.tokens_per_s, s.ms, s.comm_ms, (long long)s.tp_allreduce_bytes);
  if (!s.pipe_idle.empty()) {
    line += ", \"pipe_idle\": [";
    for (size_t i = 0; i < s.pipe_idle.size(); ++i) line += format("%s%.4f", i ? ", " : "", s.pipe_idle[i]);
    line += "]";
  }
  if (s.ps)
    line += format(", \"ps_push_bytes\": %lld, \"ps_pull_bytes\": %lld, \"ps_wait_ms\": %.3f", (long long)s.ps->push_bytes,
                   (long long)s.ps->pull_bytes, s.ps->wait_s * 1e3);
  if (s.ps && s.ps->staleness_mean)
    line += format(", \"ps_staleness_mean\": %.3f, \"ps_staleness_max\": %lld", *s.ps->staleness_mean,
                   (long long)s.ps->staleness_max);
  if (s.sync) {
    line += format(", \"sync_bytes\": %lld", (long long)s.sync->sent_bytes);
    // Against an f32 all-reduce of every step's gradients, over the steps this process ran
    // (methods that merge every H steps send nothing in between).
    if (s.sync->total_sent_bytes > 0)
      line += format(", \"compression\": %.4g",
                     double(s.sync->total_dense_bytes) / double(s.sync->total_sent_bytes));
  }
  if (s.loss_scale > 0)
    line += format(", \"loss_scale\": %.9g, \"skipped\": %s", double(s.loss_scale), s.skipped ? "true" : "false");
  append(line + "}\n");
}

void MetricsLog::eval(const EvalStats& e, bool best) {
  if (!f_) return;
  std::string line = format("{\"step\": %lld, \"val_loss\": %.6g, \"val_ppl\": %.6g, \"val_tokens\": %lld, \"best\": %s",
                            (long long)e.step, e.loss, std::exp(double(e.loss)), (long long)e.tokens,
                            best ? "true" : "false");
  if (e.consensus_distance) line += format(", \"consensus_distance\": %.6g", *e.consensus_distance);
  append(line + "}\n");
}

void truncate_metrics_after(const fs::path& path, int64_t step) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return;  // absent, or not a file meshlm would rewrite
  const std::string text = read_file(path, "metrics log");
  std::string kept;
  kept.reserve(text.size());
  bool dropped = false;
  size_t begin = 0;
  while (begin < text.size()) {
    const size_t end = text.find('\n', begin);
    if (end == std::string::npos) {  // an unterminated last line: the tail of an interrupted write
      dropped = true;
      break;
    }
    const std::string_view line(text.data() + begin, end - begin);
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    const bool keep = j.is_object() && j.contains("step") && j["step"].is_number_integer() &&
                      j["step"].get<int64_t>() <= step;
    if (keep)
      kept.append(line).push_back('\n');
    else
      dropped = true;
    begin = end + 1;
  }
  if (dropped) write_text_atomic(path, kept);
}

}  // namespace meshlm
