// The hang watchdog's pieces: the progress beacon, heartbeat files and the verdict on them.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include <unistd.h>

#include "meshlm/core/progress_beacon.hpp"
#include "meshlm/train/hang_watch.hpp"
#include "meshlm/train/heartbeat.hpp"

namespace meshlm {
namespace {

Heartbeat beat(int rank, uint64_t beat_count, uint64_t progress, const std::string& waiting = "") {
  Heartbeat h;
  h.rank = rank;
  h.pid = 100 + rank;
  h.host = "node";
  h.beat = beat_count;
  h.progress = progress;
  h.step = 7;
  h.phase = "backward";
  h.waiting = waiting;
  return h;
}

TEST(ProgressBeacon, CountsChangesAndNamesTheCallWaitedIn) {
  const uint64_t before = progress::snapshot().progress;
  progress::set_step(12);
  progress::set_phase(progress::Phase::optimizer);
  {
    const progress::WaitScope wait("MPI_Allreduce(MPI_IN_PLACE, buf, n)");
    const progress::Snapshot s = progress::snapshot();
    EXPECT_EQ(s.waiting, "MPI_Allreduce");
    EXPECT_EQ(s.step, 12);
    EXPECT_EQ(progress::phase_name(s.phase), "optimizer");
    EXPECT_EQ(s.progress, before + 3);
  }
  EXPECT_EQ(progress::snapshot().waiting, "");
  EXPECT_EQ(progress::snapshot().progress, before + 4);
}

TEST(ProgressBeacon, APollingLoopInsideOneWaitIsNoProgress) {
  const progress::WaitScope wait("MPI_Allreduce");
  const uint64_t inside = progress::snapshot().progress;
  for (int i = 0; i < 3; ++i) const progress::WaitScope poll("MPI_Test(request)");
  EXPECT_EQ(progress::snapshot().progress, inside);
  EXPECT_EQ(progress::snapshot().waiting, "MPI_Allreduce");
}

TEST(Heartbeat, RoundTripsThroughItsJsonLine) {
  const Heartbeat h = beat(3, 9, 1234, "MPI_Recv");
  const auto back = parse_heartbeat(heartbeat_json(h));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->rank, 3);
  EXPECT_EQ(back->progress, 1234u);
  EXPECT_EQ(back->waiting, "MPI_Recv");
  EXPECT_FALSE(parse_heartbeat("{\"rank\": 1"));
  EXPECT_FALSE(parse_heartbeat("[]"));
}

TEST(Heartbeat, WriterPublishesThisRankWhenTheSupervisorAsks) {
  const auto dir = std::filesystem::temp_directory_path() / ("meshlm_heartbeat_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  ::setenv(kHeartbeatDirEnv, dir.c_str(), 1);
  {
    const HeartbeatWriter writer(2);
    progress::set_step(5);
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
  }
  ::unsetenv(kHeartbeatDirEnv);
  const std::vector<Heartbeat> beats = read_heartbeats(dir);
  ASSERT_EQ(beats.size(), 1u);
  EXPECT_EQ(beats[0].rank, 2);
  EXPECT_EQ(beats[0].pid, int64_t(::getpid()));
  EXPECT_EQ(beats[0].step, 5);
  EXPECT_GE(beats[0].beat, 2u);
  std::filesystem::remove_all(dir);
}

TEST(HangWatch, RanksThatProgressAreNotHung) {
  HangWatch watch(5);
  for (int t = 0; t <= 20; ++t)
    EXPECT_FALSE(watch.observe({beat(0, uint64_t(t), uint64_t(t)), beat(1, uint64_t(t), uint64_t(2 * t))}, t));
}

TEST(HangWatch, NamesTheStoppedRankFirstAndTheOneWaitingForIt) {
  HangWatch watch(5);
  // Rank 1 stops at t = 2 (neither beat nor progress); rank 0 beats on, stuck in an all-reduce
  // from t = 3.
  std::optional<HangVerdict> verdict;
  double t = 0;
  for (; t <= 10 && !verdict; t += 0.5) {
    const uint64_t b = uint64_t(t * 2);
    verdict = watch.observe({beat(0, b, t < 3 ? b : 6, "MPI_Allreduce"), beat(1, t < 2 ? b : 4, t < 2 ? b : 4)}, t);
  }
  ASSERT_TRUE(verdict);
  EXPECT_DOUBLE_EQ(t - 0.5, 7.0);  // rank 1 still since t = 2: hung at 2 + 5
  ASSERT_EQ(verdict->stuck.size(), 2u);
  EXPECT_EQ(verdict->stuck[0].rank, 1);
  EXPECT_EQ(verdict->stuck[1].rank, 0);
  EXPECT_NE(verdict->message.find("rank 1 (pid 101 on node: stopped or frozen"), std::string::npos) << verdict->message;
  EXPECT_NE(verdict->message.find("rank 0 (pid 100 on node: step 7, backward, waiting in MPI_Allreduce)"),
            std::string::npos)
      << verdict->message;
}

TEST(HangWatch, ARestartedRankIsWatchedAfresh) {
  HangWatch watch(5);
  EXPECT_FALSE(watch.observe({beat(0, 1, 1)}, 0));
  Heartbeat restarted = beat(0, 1, 1);
  restarted.pid = 999;  // the same counters from a new process: not a stuck one
  EXPECT_FALSE(watch.observe({restarted}, 6));
  EXPECT_TRUE(watch.observe({restarted}, 11.5));
}

}  // namespace
}  // namespace meshlm
