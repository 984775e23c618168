// `meshlm bench` must flag a run whose figures cannot be trusted: a busy machine (load average)
// and a disturbed one (step times spread wide while the load looked fine).
#include <gtest/gtest.h>

#include <vector>

#include "meshlm/train/bench_quietness.hpp"

namespace meshlm {
namespace {

TEST(BenchQuietness, EvenStepsOnAnIdleMachineAreQuiet) {
  const std::vector<double> ms = {100.0, 101.5, 99.0, 100.4, 102.0};
  const BenchQuietness q = judge_quietness(ms, 0.1, 1.2, 1);
  EXPECT_FALSE(q.disturbed);
  EXPECT_FALSE(q.busy);
  EXPECT_NEAR(q.spread, 3.0 / 100.4, 1e-12);  // (102 − 99) / the median 100.4
  EXPECT_EQ(q.verdict, "quiet");
}

TEST(BenchQuietness, WideSpreadIsDisturbedEvenWhenTheLoadLooksFine) {
  const std::vector<double> ms = {100.0, 100.0, 100.0, 135.0, 100.0};
  const BenchQuietness q = judge_quietness(ms, 0.5, 0.8, 2);
  EXPECT_TRUE(q.disturbed);
  EXPECT_FALSE(q.busy);
  EXPECT_NEAR(q.spread, 0.35, 1e-9);
  EXPECT_NE(q.verdict.find("DISTURBED"), std::string::npos);
  EXPECT_NE(q.verdict.find("spread 35%"), std::string::npos) << q.verdict;
}

TEST(BenchQuietness, LoadBeyondTheRunsThreadsIsBusy) {
  const std::vector<double> ms = {50.0, 50.5, 50.2};
  const BenchQuietness q = judge_quietness(ms, 1.0, 2.7, 2);  // 2 threads of our own, 0.7 of someone else's
  EXPECT_TRUE(q.busy);
  EXPECT_TRUE(q.disturbed);
  EXPECT_NE(q.verdict.find("other work shares the CPUs"), std::string::npos);
  EXPECT_EQ(q.verdict.find("spread"), std::string::npos) << "the spread was within bounds: " << q.verdict;
}

TEST(BenchQuietness, TheBoundaryIsTenPercent) {
  EXPECT_FALSE(judge_quietness(std::vector<double>{100.0, 110.0, 100.0}, -1, -1, 1).disturbed);
  EXPECT_TRUE(judge_quietness(std::vector<double>{100.0, 110.5, 100.0}, -1, -1, 1).disturbed);
}

TEST(BenchQuietness, UnknownLoadIsJudgedByStepTimesAlone) {
  const BenchQuietness q = judge_quietness(std::vector<double>{10.0, 10.1}, -1, -1, 1);
  EXPECT_FALSE(q.busy);
  EXPECT_FALSE(q.disturbed);
  EXPECT_EQ(q.verdict, "quiet by step times (no load average here)");
}

}  // namespace
}  // namespace meshlm
