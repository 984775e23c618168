// The one-rank group: a reduction over one rank is the identity, so every op returns at once.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <numeric>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/comm/ready_request.hpp"
#include "meshlm/comm/reduce_ops.hpp"
#include "meshlm/core/error.hpp"

namespace meshlm {
namespace {

class SelfCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "self"; }

  void all_reduce(DevicePtr, int64_t count, DType dtype, ReduceOp) override { check(count, dtype, true); }
  std::unique_ptr<Request> all_reduce_async(DevicePtr data, int64_t count, DType dtype, ReduceOp op) override {
    all_reduce(data, count, dtype, op);
    return std::make_unique<ReadyRequest>();
  }

  void reduce_scatter(ConstDevicePtr send, DevicePtr recv, std::span<const int64_t> counts, DType dtype,
                      ReduceOp) override {
    check_counts(counts);
    check(counts[0], dtype, true);
    copy(send, recv, counts[0], dtype);
  }
  void all_gather(ConstDevicePtr send, DevicePtr recv, std::span<const int64_t> counts, DType dtype) override {
    check_counts(counts);
    check(counts[0], dtype, false);
    copy(send, recv, counts[0], dtype);
  }
  void broadcast(DevicePtr, int64_t count, DType dtype, int root) override {
    check(count, dtype, false);
    MESHLM_ASSERT(root == 0, "broadcast root ", root, " in a group of one");
  }

  // A one-rank group has no peer: a message to itself would deadlock a blocking send.
  void send(ConstDevicePtr, int64_t, DType, int dst, int) override { no_peer(dst); }
  void recv(DevicePtr, int64_t, DType, int src, int) override { no_peer(src); }
  std::unique_ptr<Request> isend(ConstDevicePtr, int64_t, DType, int dst, int) override { no_peer(dst); }
  std::unique_ptr<Request> irecv(DevicePtr, int64_t, DType, int src, int) override { no_peer(src); }

  void barrier() override {}
  std::unique_ptr<Communicator> split(int, int) override {
    auto c = std::make_unique<SelfCommunicator>();
    c->set_allreduce_algo(allreduce_algo());
    return c;
  }
  [[noreturn]] void abort(int code) override {
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
    std::_Exit(code);
  }

 private:
  static void check(int64_t count, DType dtype, bool reduces) {
    MESHLM_ASSERT(count >= 0, "count = ", count);
    if (reduces) MESHLM_ASSERT(reducible(dtype), "cannot reduce ", dtype_name(dtype));
  }
  static void check_counts(std::span<const int64_t> counts) {
    MESHLM_ASSERT(counts.size() == 1, "counts has ", counts.size(), " entries for a group of one");
  }
  static void copy(ConstDevicePtr src, DevicePtr dst, int64_t count, DType dtype) {
    if (src.ptr == dst.ptr || count == 0) return;
    const size_t bytes = size_t(count) * dtype_size(dtype);
    if (!src.on_gpu() && !dst.on_gpu())
      std::memmove(dst.ptr, src.ptr, bytes);  // the shard may overlap its place in the whole
    else
      copy_bytes(dst.ptr, dst.device, src.ptr, src.device, bytes);
  }
  [[noreturn]] static void no_peer(int peer) {
    MESHLM_ASSERT(false, "point-to-point message with rank ", peer, " in the one-rank self group");
    std::abort();  // unreachable: the assertion throws
  }
};

}  // namespace

std::unique_ptr<Communicator> make_self_communicator() { return std::make_unique<SelfCommunicator>(); }

}  // namespace meshlm
