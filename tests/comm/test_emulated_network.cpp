// The network model of comm/emulated_network.hpp: the spec's parsing and errors, the traffic
// and delay it charges each op, and the wrapper over the one-rank group (which costs nothing).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/comm/emulated_network.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/core/timer.hpp"

namespace meshlm {
namespace {

constexpr const char* kKey = "parallel.emulate_network";

std::string error_of(const std::string& spec) {
  try {
    parse_network_model(spec, kKey);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(EmulatedNetwork, ParsesLatencyAndBandwidth) {
  const NetworkModel net = parse_network_model("latency_ms=5,gbps=1", kKey);
  EXPECT_DOUBLE_EQ(net.latency_s, 0.005);
  EXPECT_DOUBLE_EQ(net.bytes_per_s, 125e6);  // 1 gigabit per second
  EXPECT_TRUE(net.active());
  EXPECT_DOUBLE_EQ(parse_network_model("gbps=10", kKey).bytes_per_s, 1.25e9);
  EXPECT_EQ(parse_network_model("gbps=10", kKey).latency_s, 0);
  EXPECT_DOUBLE_EQ(parse_network_model("latency_ms=0.5", kKey).latency_s, 0.0005);
  EXPECT_EQ(parse_network_model("latency_ms=0.5", kKey).bytes_per_s, 0);  // unlimited
  EXPECT_FALSE(parse_network_model("", kKey).active());
}

TEST(EmulatedNetwork, MalformedSpecsNameTheKeyAndThePart) {
  for (const auto& [spec, part] : std::vector<std::pair<std::string, std::string>>{
           {"latency_ms=abc", "latency_ms=abc"},
           {"latency_ms=5,gbps", "gbps"},
           {"latency=5", "latency"},
           {"latency_ms=-1", "latency_ms"},
           {"gbps=0", "gbps"},
           {"latency_ms=5,", "''"},
           {"latency_ms=5,latency_ms=6", "twice"},
           {"gbps=1e999", "gbps=1e999"}}) {
    const std::string e = error_of(spec);
    EXPECT_NE(e.find(kKey), std::string::npos) << spec << ": " << e;
    EXPECT_NE(e.find(part), std::string::npos) << spec << ": " << e;
  }
}

TEST(EmulatedNetwork, TrafficFollowsTheRingAlgorithms) {
  const int64_t bytes = 4'000'000;
  auto traffic = [&](CommOp op, int ranks) { return modelled_traffic(op, bytes, ranks); };
  EXPECT_EQ(traffic(CommOp::send, 2).messages, 1);
  EXPECT_EQ(traffic(CommOp::send, 2).bytes, double(bytes));
  EXPECT_EQ(traffic(CommOp::recv, 2).messages, 0);  // the sender pays
  EXPECT_EQ(traffic(CommOp::all_reduce, 4).messages, 6);                   // 2(N-1)
  EXPECT_DOUBLE_EQ(traffic(CommOp::all_reduce, 4).bytes, 1.5 * bytes);     // 2(N-1)/N
  EXPECT_EQ(traffic(CommOp::reduce_scatter, 4).messages, 3);               // N-1
  EXPECT_DOUBLE_EQ(traffic(CommOp::reduce_scatter, 4).bytes, 0.75 * bytes);  // (N-1)/N
  EXPECT_DOUBLE_EQ(traffic(CommOp::all_gather, 4).bytes, 0.75 * bytes);
  EXPECT_EQ(traffic(CommOp::broadcast, 5).messages, 3);  // ceil(log2 5)
  EXPECT_EQ(traffic(CommOp::barrier, 4).messages, 2);
  EXPECT_EQ(traffic(CommOp::barrier, 4).bytes, 0);
  for (CommOp op : {CommOp::all_reduce, CommOp::reduce_scatter, CommOp::all_gather, CommOp::broadcast,
                    CommOp::barrier})
    EXPECT_EQ(traffic(op, 1).messages, 0);  // one rank: nothing on the wire
}

TEST(EmulatedNetwork, DelayIsLatencyPerMessagePlusBytesOverBandwidth) {
  const NetworkModel net = parse_network_model("latency_ms=5,gbps=1", kKey);
  // 1 M floats all-reduced over 2 ranks: 2 messages (10 ms) + 4 MB / 125 MB/s (32 ms).
  EXPECT_NEAR(modelled_seconds(net, CommOp::all_reduce, 4'000'000, 2), 0.042, 1e-12);
  // Over 4 ranks: 6 messages (30 ms) + 6 MB / 125 MB/s (48 ms).
  EXPECT_NEAR(modelled_seconds(net, CommOp::all_reduce, 4'000'000, 4), 0.078, 1e-12);
  EXPECT_NEAR(modelled_seconds(net, CommOp::send, 1'250'000, 2), 0.015, 1e-12);
  EXPECT_EQ(modelled_seconds(net, CommOp::recv, 1'250'000, 2), 0);
  EXPECT_EQ(modelled_seconds(net, CommOp::all_reduce, 4'000'000, 1), 0);
  const NetworkModel latency_only = parse_network_model("latency_ms=20", kKey);
  EXPECT_NEAR(modelled_seconds(latency_only, CommOp::all_reduce, 1 << 30, 2), 0.040, 1e-12);
}

TEST(EmulatedNetwork, WrapsAnyCommunicatorAndKeepsItsResults) {
  std::unique_ptr<Communicator> self = make_self_communicator();
  self->set_label("dp");
  std::unique_ptr<Communicator> net = emulate_network(*self, parse_network_model("latency_ms=200", kKey));
  EXPECT_EQ(net->size(), 1);
  EXPECT_EQ(net->rank(), 0);
  EXPECT_EQ(net->backend(), "self");
  EXPECT_EQ(net->label(), "dp");
  std::vector<float> x{1.5f, -2.f, 3.25f};
  const Timer clock;
  net->all_reduce(x.data(), 3, DType::f32, ReduceOp::sum);
  net->all_reduce_async(x.data(), 3, DType::f32, ReduceOp::avg)->wait();
  net->barrier();
  std::unique_ptr<Communicator> part = net->split(0, 0);
  part->all_reduce(x.data(), 3, DType::f32, ReduceOp::max);
  EXPECT_LT(clock.seconds(), 0.2);  // a one-rank group puts nothing on the wire
  EXPECT_EQ(x, (std::vector<float>{1.5f, -2.f, 3.25f}));
  EXPECT_EQ(part->label(), "dp");
}

}  // namespace
}  // namespace meshlm
