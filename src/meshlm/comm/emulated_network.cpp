#include "meshlm/comm/emulated_network.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <thread>

#include "meshlm/comm/async_queue.hpp"
#include "meshlm/core/error.hpp"

namespace meshlm {

namespace {

constexpr const char* kSpecForm = "latency_ms=MS,gbps=GBITS_PER_S, e.g. \"latency_ms=5,gbps=1\"";

double parse_number(std::string_view text, std::string_view key, std::string_view part) {
  double v = 0;
  const auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || r.ec != std::errc() || r.ptr != text.data() + text.size() || !std::isfinite(v))
    throw UserError(cat(key, ": '", part, "' is not a number (expected ", kSpecForm, ")"));
  return v;
}

int ceil_log2(int n) {
  int rounds = 0;
  while ((1 << rounds) < n) ++rounds;
  return rounds;
}

void pause_for(double seconds) {
  if (seconds > 0) std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
}

int64_t bytes_of(int64_t count, DType dtype) { return count * int64_t(dtype_size(dtype)); }

int64_t total(std::span<const int64_t> counts) { return std::accumulate(counts.begin(), counts.end(), int64_t(0)); }

// A message handed to the wrapper's link: it starts on the wrapped communicator once its
// modelled time has passed on the link's thread, so the caller does not wait for it.
class DelayedSend final : public Request {
 public:
  DelayedSend(AsyncQueue& link, std::function<std::unique_ptr<Request>()> start) : sent_(std::make_shared<Sent>()) {
    job_ = link.submit([sent = sent_, start = std::move(start)] { sent->request = start(); });
  }
  ~DelayedSend() override {
    // As every Request: the buffer must outlive the send, so an abandoned one still waits.
    try {
      wait();
    } catch (...) {
    }
  }
  void wait() override {
    if (!job_) return;
    job_->wait();  // started (rethrows the start's error)
    if (sent_->request) sent_->request->wait();
    job_.reset();
    sent_->request.reset();
  }
  bool test() override {
    if (!job_) return true;
    if (!job_->test()) return false;
    return sent_->request ? sent_->request->test() : true;
  }

 private:
  struct Sent {
    std::unique_ptr<Request> request;  // written by the link's thread before the job completes
  };
  std::shared_ptr<Sent> sent_;
  std::unique_ptr<Request> job_;
};

class EmulatedNetworkCommunicator final : public Communicator {
 public:
  EmulatedNetworkCommunicator(Communicator& inner, std::unique_ptr<Communicator> owned, const NetworkModel& net)
      : owned_(std::move(owned)), inner_(inner), net_(net) {
    set_label(inner.label());
    set_allreduce_algo(inner.allreduce_algo());
  }

  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string backend() const override { return inner_.backend(); }

  void all_reduce(DevicePtr data, int64_t count, DType dtype, ReduceOp op) override {
    pause_for(cost(CommOp::all_reduce, bytes_of(count, dtype)));
    forwarded().all_reduce(data, count, dtype, op);
  }
  std::unique_ptr<Request> all_reduce_async(DevicePtr data, int64_t count, DType dtype, ReduceOp op) override {
    Communicator& inner = forwarded();
    const double delay = cost(CommOp::all_reduce, bytes_of(count, dtype));
    // In the background, in the order started, as the interface promises.
    return collectives_.submit([&inner, delay, data, count, dtype, op] {
      pause_for(delay);
      inner.all_reduce(data, count, dtype, op);
    });
  }
  void reduce_scatter(ConstDevicePtr send, DevicePtr recv, std::span<const int64_t> counts, DType dtype,
                      ReduceOp op) override {
    pause_for(cost(CommOp::reduce_scatter, bytes_of(total(counts), dtype)));
    forwarded().reduce_scatter(send, recv, counts, dtype, op);
  }
  void all_gather(ConstDevicePtr send, DevicePtr recv, std::span<const int64_t> counts, DType dtype) override {
    pause_for(cost(CommOp::all_gather, bytes_of(total(counts), dtype)));
    forwarded().all_gather(send, recv, counts, dtype);
  }
  void broadcast(DevicePtr data, int64_t count, DType dtype, int root) override {
    pause_for(cost(CommOp::broadcast, bytes_of(count, dtype)));
    forwarded().broadcast(data, count, dtype, root);
  }

  // A blocking send goes through the link as well, so that it never overtakes an isend
  // started before it (MPI's order of messages between two ranks holds).
  void send(ConstDevicePtr data, int64_t count, DType dtype, int dst, int tag) override {
    isend(data, count, dtype, dst, tag)->wait();
  }
  void recv(DevicePtr data, int64_t count, DType dtype, int src, int tag) override {
    forwarded().recv(data, count, dtype, src, tag);
  }
  std::unique_ptr<Request> isend(ConstDevicePtr data, int64_t count, DType dtype, int dst, int tag) override {
    Communicator& inner = forwarded();
    const double delay = cost(CommOp::send, bytes_of(count, dtype));
    return std::make_unique<DelayedSend>(link_, [&inner, delay, data, count, dtype, dst, tag] {
      pause_for(delay);
      return inner.isend(data, count, dtype, dst, tag);
    });
  }
  std::unique_ptr<Request> irecv(DevicePtr data, int64_t count, DType dtype, int src, int tag) override {
    return forwarded().irecv(data, count, dtype, src, tag);
  }

  void barrier() override {
    pause_for(cost(CommOp::barrier, 0));
    forwarded().barrier();
  }
  std::unique_ptr<Communicator> split(int color, int key) override {
    std::unique_ptr<Communicator> part = forwarded().split(color, key);
    Communicator& ref = *part;
    auto wrapped = std::make_unique<EmulatedNetworkCommunicator>(ref, std::move(part), net_);
    wrapped->set_label(label());  // a split group starts with its parent's label
    return wrapped;
  }
  [[noreturn]] void abort(int code) override {
    inner_.abort(code);
    std::abort();  // not reached: the wrapped abort does not return
  }

 private:
  double cost(CommOp op, int64_t bytes) const { return modelled_seconds(net_, op, bytes, size()); }
  // The wrapped group, told the algorithm and label set on the wrapper (they are plain members
  // of Communicator, not virtual); written only when they changed, before any op is queued.
  Communicator& forwarded() {
    if (inner_.allreduce_algo() != allreduce_algo()) inner_.set_allreduce_algo(allreduce_algo());
    if (inner_.label() != label()) inner_.set_label(label());
    return inner_;
  }

  std::unique_ptr<Communicator> owned_;  // a group split from a wrapper; null for the outermost
  Communicator& inner_;
  NetworkModel net_;
  AsyncQueue link_;         // this rank's link: its messages leave one at a time
  AsyncQueue collectives_;  // all_reduce_async
};

}  // namespace

NetworkModel parse_network_model(std::string_view spec, std::string_view key) {
  NetworkModel net;
  bool seen_latency = false, seen_gbps = false;
  size_t at = 0;
  while (!spec.empty() && at <= spec.size()) {
    const size_t comma = std::min(spec.find(',', at), spec.size());
    const std::string_view part = spec.substr(at, comma - at);
    at = comma + 1;
    const size_t eq = part.find('=');
    if (eq == std::string_view::npos)
      throw UserError(cat(key, ": '", part, "' is not name=value (expected ", kSpecForm, ")"));
    const std::string_view name = part.substr(0, eq), value = part.substr(eq + 1);
    const double v = parse_number(value, key, part);
    if (name == "latency_ms") {
      if (seen_latency) throw UserError(cat(key, ": latency_ms is given twice"));
      if (v < 0) throw UserError(cat(key, ": latency_ms must not be negative, got ", value));
      seen_latency = true;
      net.latency_s = v / 1e3;
    } else if (name == "gbps") {
      if (seen_gbps) throw UserError(cat(key, ": gbps is given twice"));
      if (!(v > 0)) throw UserError(cat(key, ": gbps must be positive, got ", value));
      seen_gbps = true;
      net.bytes_per_s = v * 1e9 / 8;
    } else {
      throw UserError(cat(key, ": unknown part '", name, "' (expected ", kSpecForm, ")"));
    }
  }
  return net;
}

WireTraffic modelled_traffic(CommOp op, int64_t bytes, int ranks) {
  MESHLM_ASSERT(ranks >= 1 && bytes >= 0, "ranks ", ranks, ", bytes ", bytes);
  const int64_t n = ranks;
  if (op == CommOp::send) return {1, double(bytes)};
  if (op == CommOp::recv || n == 1) return {};
  switch (op) {
    case CommOp::all_reduce: return {2 * (n - 1), 2.0 * double(n - 1) / double(n) * double(bytes)};
    case CommOp::reduce_scatter:
    case CommOp::all_gather: return {n - 1, double(n - 1) / double(n) * double(bytes)};
    case CommOp::broadcast: return {ceil_log2(ranks), double(ceil_log2(ranks)) * double(bytes)};
    case CommOp::barrier: return {ceil_log2(ranks), 0};
    default: break;
  }
  MESHLM_ASSERT(false, "unknown CommOp");
  return {};
}

double modelled_seconds(const NetworkModel& net, CommOp op, int64_t bytes, int ranks) {
  const WireTraffic t = modelled_traffic(op, bytes, ranks);
  const double transfer = net.bytes_per_s > 0 ? t.bytes / net.bytes_per_s : 0;
  return double(t.messages) * net.latency_s + transfer;
}

std::unique_ptr<Communicator> emulate_network(Communicator& inner, const NetworkModel& net) {
  MESHLM_ASSERT(net.active(), "emulate_network without a model");
  return std::make_unique<EmulatedNetworkCommunicator>(inner, nullptr, net);
}

}  // namespace meshlm
