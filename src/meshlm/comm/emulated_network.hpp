#pragma once
// A network model for benchmarks on one machine: a Communicator wrapper that makes every
// message cost latency + bytes / bandwidth, so that the ranks of a job on one host (whose
// messages cross shared memory in microseconds) see a slow link instead. It is emulation:
// it sleeps for the modelled time and then lets the wrapped communicator move the data, so
// results are unchanged bit for bit and only the timing is the modelled network's.
//
// The model (docs/comm.md): a message of b bytes costs latency + b / bandwidth, paid by its
// sender before it leaves; a rank sends its messages one at a time (one link per rank). A
// receive adds nothing of its own: it waits for the delayed sender. A collective over N ranks
// costs what each rank sends under the ring algorithms, whichever algorithm really runs:
//   all_reduce      2(N-1) messages, 2(N-1)/N x bytes   (reduce-scatter, then all-gather)
//   reduce_scatter  N-1 messages,    (N-1)/N x bytes    (bytes: the whole send buffer)
//   all_gather      N-1 messages,    (N-1)/N x bytes    (bytes: the whole receive buffer)
//   broadcast       ceil(log2 N) messages of the whole buffer (a binomial tree's depth)
//   barrier         ceil(log2 N) empty messages (a dissemination barrier)
// A one-rank group costs nothing.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "meshlm/comm/communicator.hpp"

namespace meshlm {

struct NetworkModel {
  double latency_s = 0;    // per message
  double bytes_per_s = 0;  // link bandwidth; 0: unlimited
  bool active() const { return latency_s > 0 || bytes_per_s > 0; }
};

// Parses "latency_ms=5,gbps=1" (either part may be left out; gbps is gigabits per second,
// 1 gbps = 125 MB/s). An empty spec is no emulation. Malformed specs are UserErrors naming
// `key` (the config key the spec came from) and the part at fault.
NetworkModel parse_network_model(std::string_view spec, std::string_view key);

enum class CommOp { send, recv, all_reduce, reduce_scatter, all_gather, broadcast, barrier };

// What one rank puts on the wire for `op` over `bytes` (the message, or the whole buffer of a
// collective) in a group of `ranks`.
struct WireTraffic {
  int64_t messages = 0;
  double bytes = 0;
};
WireTraffic modelled_traffic(CommOp op, int64_t bytes, int ranks);
// The delay the wrapper adds for that op: messages x latency + bytes / bandwidth.
double modelled_seconds(const NetworkModel& net, CommOp op, int64_t bytes, int ranks);

// Wraps `inner` (which must outlive the wrapper); groups split from the wrapper are wrapped
// with the same model. `net` must be active.
std::unique_ptr<Communicator> emulate_network(Communicator& inner, const NetworkModel& net);

}  // namespace meshlm
