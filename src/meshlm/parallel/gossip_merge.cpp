#include "meshlm/parallel/gossip_merge.hpp"

#include "meshlm/core/error.hpp"

namespace meshlm {

GossipMerge::GossipMerge(Communicator& dp, size_t n, GossipGraph graph) : dp_(dp), n_(n), graph_(graph) {
  if (dp_.size() > 1) left_.resize(n);
  if (dp_.size() > 2 && graph_ == GossipGraph::ring) right_.resize(n);
}

int64_t GossipMerge::merge(float* params, int64_t round) {
  const int N = dp_.size(), me = dp_.rank();
  if (N == 1) return 0;
  const int64_t count = int64_t(n_), bytes = count * int64_t(sizeof(float));
  if (graph_ == GossipGraph::ring && N > 2) {
    const int left = (me + N - 1) % N, right = (me + 1) % N;
    auto r1 = dp_.irecv(left_.data(), count, DType::f32, left, 1);
    auto r2 = dp_.irecv(right_.data(), count, DType::f32, right, 2);
    auto s1 = dp_.isend(params, count, DType::f32, right, 1);  // I am my right neighbour's left
    auto s2 = dp_.isend(params, count, DType::f32, left, 2);
    r1->wait(), r2->wait(), s1->wait(), s2->wait();
    for (size_t i = 0; i < n_; ++i) params[i] = (left_[i] + params[i] + right_[i]) / 3.0f;
    return 2 * bytes;
  }
  // One peer: the ring of two ranks, or the exponential graph's peer of this round.
  int hops = 1;
  if (graph_ == GossipGraph::exponential) {
    int rounds = 0;  // ⌈log2 N⌉ distinct distances 1, 2, 4, ...
    while ((1 << rounds) < N) ++rounds;
    hops = 1 << int((round - 1) % rounds);
  }
  const int to = (me + hops) % N, from = (me + N - hops) % N;
  auto r = dp_.irecv(left_.data(), count, DType::f32, from, 3);
  auto s = dp_.isend(params, count, DType::f32, to, 3);
  r->wait(), s->wait();
  for (size_t i = 0; i < n_; ++i) params[i] = 0.5f * (params[i] + left_[i]);
  return bytes;
}

std::string GossipMerge::describe() const {
  return graph_ == GossipGraph::ring ? "gossip with both ring neighbours"
                                     : "gossip with one peer per round (exponential graph)";
}

}  // namespace meshlm
