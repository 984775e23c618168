#include "meshlm/train/hang_watch.hpp"

#include <algorithm>
#include <cmath>

#include "meshlm/core/error.hpp"

namespace meshlm {

namespace {
// Heartbeats are written about twice a second: a few missed ones mean the process does not run.
constexpr double kSilentAfterS = 3.0;

std::string seconds(double s) { return cat(int64_t(std::floor(s)), " s"); }
}  // namespace

std::optional<HangVerdict> HangWatch::observe(const std::vector<Heartbeat>& beats, double now_s) {
  for (const Heartbeat& h : beats) {
    auto it = tracks_.find(h.rank);
    if (it == tracks_.end() || it->second.last.pid != h.pid) {
      tracks_[h.rank] = {h, now_s, now_s};
      continue;
    }
    Track& t = it->second;
    if (h.progress != t.last.progress) t.progress_at = now_s;
    if (h.beat != t.last.beat) t.beat_at = now_s;
    t.last = h;
  }
  struct Stuck {
    const Track* track;
    bool silent;
  };
  const bool hung = std::any_of(tracks_.begin(), tracks_.end(),
                                [&](const auto& t) { return now_s - t.second.progress_at >= timeout_s_; });
  if (!hung) return std::nullopt;
  // The ranks that wait on the stuck one stopped a little later (heartbeats are sampled): every
  // rank still for half the timeout is named with it.
  std::vector<Stuck> stuck;
  for (const auto& [rank, t] : tracks_)
    if (now_s - t.progress_at >= timeout_s_ / 2)
      stuck.push_back({&t, now_s - t.beat_at >= std::min(kSilentAfterS, timeout_s_)});
  std::stable_sort(stuck.begin(), stuck.end(), [](const Stuck& a, const Stuck& b) { return a.silent && !b.silent; });

  HangVerdict v;
  std::string parts;
  for (size_t i = 0; i < stuck.size(); ++i) {
    const Track& t = *stuck[i].track;
    const Heartbeat& h = t.last;
    v.stuck.push_back(h);
    std::string what = cat("step ", h.step, ", ", h.phase);
    if (stuck[i].silent)
      what = cat("stopped or frozen: no heartbeat for ", seconds(now_s - t.beat_at), "; last at ", what,
                 h.waiting.empty() ? "" : cat(", in ", h.waiting));
    else
      what += h.waiting.empty() ? ", computing" : cat(", waiting in ", h.waiting);
    if (i > 0) parts += i + 1 == stuck.size() ? " and " : ", ";
    parts += cat("rank ", h.rank, " (pid ", h.pid, " on ", h.host, ": ", what, ")");
  }
  v.message = cat("job hung: no progress for ", seconds(timeout_s_), " on ", parts);
  return v;
}

}  // namespace meshlm
