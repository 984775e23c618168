#include "meshlm/train/heartbeat.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "meshlm/core/progress_beacon.hpp"

namespace meshlm {

namespace fs = std::filesystem;

namespace {
constexpr std::chrono::milliseconds kInterval{500};
}

std::string heartbeat_json(const Heartbeat& h) {
  const nlohmann::json j = {{"rank", h.rank},         {"pid", h.pid},   {"host", h.host},   {"beat", h.beat},
                            {"progress", h.progress}, {"step", h.step}, {"phase", h.phase}, {"waiting", h.waiting}};
  return j.dump() + "\n";
}

std::optional<Heartbeat> parse_heartbeat(std::string_view text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  try {
    Heartbeat h;
    h.rank = j.at("rank").get<int>();
    h.pid = j.at("pid").get<int64_t>();
    h.host = j.at("host").get<std::string>();
    h.beat = j.at("beat").get<uint64_t>();
    h.progress = j.at("progress").get<uint64_t>();
    h.step = j.at("step").get<int64_t>();
    h.phase = j.at("phase").get<std::string>();
    h.waiting = j.at("waiting").get<std::string>();
    return h;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

std::vector<Heartbeat> read_heartbeats(const fs::path& dir) {
  std::vector<Heartbeat> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("rank_", 0) != 0 || name.find('.') != std::string::npos) continue;
    FILE* f = std::fopen(entry.path().c_str(), "rb");
    if (!f) continue;
    char buf[4096];
    const size_t n = std::fread(buf, 1, sizeof buf, f);
    std::fclose(f);
    if (auto h = parse_heartbeat({buf, n})) out.push_back(std::move(*h));
  }
  std::sort(out.begin(), out.end(), [](const Heartbeat& a, const Heartbeat& b) { return a.rank < b.rank; });
  return out;
}

HeartbeatWriter::HeartbeatWriter(int rank) : rank_(rank) {
  const char* dir = std::getenv(kHeartbeatDirEnv);
  if (!dir || !*dir) return;
  std::error_code ec;
  fs::create_directories(dir, ec);
  file_ = fs::path(dir) / ("rank_" + std::to_string(rank));
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  host_ = host;
  write_once();
  thread_ = std::thread([this] { loop(); });
}

HeartbeatWriter::~HeartbeatWriter() {
  if (!thread_.joinable()) return;
  {
    const std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void HeartbeatWriter::loop() {
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, kInterval, [this] { return stop_; })) write_once();
}

// A heartbeat is advisory: a failed write is skipped (the watchdog then sees a stale beat,
// which a full disk deserves), never an error of the run. Replaced by rename, so a reader sees
// the old or the new content; not fsync'ed, since nothing reads it after a machine crash.
void HeartbeatWriter::write_once() {
  const progress::Snapshot s = progress::snapshot();
  Heartbeat h;
  h.rank = rank_;
  h.pid = int64_t(::getpid());
  h.host = host_;
  h.beat = ++beat_;
  h.progress = s.progress;
  h.step = s.step;
  h.phase = std::string(progress::phase_name(s.phase));
  h.waiting = std::string(s.waiting);
  const std::string text = heartbeat_json(h);
  const fs::path tmp = file_.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  const bool ok = ::write(fd, text.data(), text.size()) == ssize_t(text.size());
  ::close(fd);
  std::error_code ec;
  if (ok) fs::rename(tmp, file_, ec);
}

}  // namespace meshlm
