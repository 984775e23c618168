// All-reduce benchmark: our ring (ring_all_reduce over isend/irecv) against the MPI library's
// MPI_Allreduce, on f32 buffers from 1 KiB to 256 MiB. The two alternate at every size so that
// machine noise hits both; each sample is the slowest rank's time, and the table reports
// medians, with bus bandwidth = size/time · 2(n−1)/n (the bytes each rank must move). For f32
// buffers a third column times the compressed ring (bf16 on the wire, ring_all_reduce_compressed),
// its bus bandwidth counted on the f32 size, so cmp/ring is the speed-up over the f32 ring.
//   mpirun -np N meshlm_allreduce_bench [--min-kib K] [--max-mib M] [--reps R] [--dtype f32|bf16]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/comm/ring_all_reduce.hpp"
#include "meshlm/core/error.hpp"

using namespace meshlm;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Seconds per call of `reduce`: `iters` back to back, the slowest rank's time.
template <class F>
double timed(Communicator& c, int iters, F&& reduce) {
  c.barrier();
  const double t0 = now_s();
  for (int i = 0; i < iters; ++i) reduce();
  float dt = float(now_s() - t0);
  c.all_reduce(&dt, 1, DType::f32, ReduceOp::max);
  return double(dt) / iters;
}

double sample_compressed(Communicator& c, void* data, int64_t count, int iters) {
  return timed(c, iters, [&] {
    ring_all_reduce_compressed(c, static_cast<float*>(data), count, DType::bf16, ReduceOp::sum);
  });
}

// Seconds per all_reduce: `iters` back to back, the slowest rank's time.
double sample(Communicator& c, AllReduceAlgo algo, void* data, int64_t count, DType t, int iters) {
  c.set_allreduce_algo(algo);
  c.barrier();
  const double t0 = now_s();
  for (int i = 0; i < iters; ++i) c.all_reduce(data, count, t, ReduceOp::sum);
  float dt = float(now_s() - t0);
  c.set_allreduce_algo(AllReduceAlgo::native);
  c.all_reduce(&dt, 1, DType::f32, ReduceOp::max);
  return double(dt) / iters;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

std::string human(int64_t bytes) {
  char s[32];
  if (bytes >= (int64_t(1) << 20))
    std::snprintf(s, sizeof s, "%lld MiB", (long long)(bytes >> 20));
  else
    std::snprintf(s, sizeof s, "%lld KiB", (long long)(bytes >> 10));
  return s;
}

// Checks both algorithms once on this size: rank r contributes r + 1 everywhere.
bool correct(Communicator& c, std::vector<unsigned char>& buf, int64_t count, DType t) {
  const int n = c.size();
  const float want = float(n * (n + 1) / 2);
  bool ok = true;
  for (AllReduceAlgo algo : {AllReduceAlgo::ring, AllReduceAlgo::native}) {
    for (int64_t i = 0; i < count; ++i) {
      const float v = float(c.rank() + 1);
      if (t == DType::f32)
        std::memcpy(buf.data() + 4 * i, &v, 4);
      else {
        const uint16_t h = f32_to_bf16(v);
        std::memcpy(buf.data() + 2 * i, &h, 2);
      }
    }
    c.set_allreduce_algo(algo);
    c.all_reduce(buf.data(), count, t, ReduceOp::sum);
    for (int64_t i : {int64_t(0), count / 2, count - 1}) {
      float got;
      if (t == DType::f32) {
        std::memcpy(&got, buf.data() + 4 * i, 4);
      } else {
        uint16_t h;
        std::memcpy(&h, buf.data() + 2 * i, 2);
        got = bf16_to_f32(h);
      }
      ok = ok && got == want;
    }
  }
  c.set_allreduce_algo(AllReduceAlgo::native);
  if (t == DType::f32) {  // the compressed ring: small integers are exact in bf16
    for (int64_t i = 0; i < count; ++i) {
      const float v = float(c.rank() + 1);
      std::memcpy(buf.data() + 4 * i, &v, 4);
    }
    ring_all_reduce_compressed(c, reinterpret_cast<float*>(buf.data()), count, DType::bf16, ReduceOp::sum);
    for (int64_t i : {int64_t(0), count / 2, count - 1}) {
      float got;
      std::memcpy(&got, buf.data() + 4 * i, 4);
      ok = ok && got == want;
    }
  }
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t min_bytes = 1 << 10, max_bytes = int64_t(256) << 20;
  int reps = 7;
  DType dtype = DType::f32;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--min-kib")
      min_bytes = std::atoll(argv[i + 1]) << 10;
    else if (flag == "--max-mib")
      max_bytes = std::atoll(argv[i + 1]) << 20;
    else if (flag == "--reps")
      reps = std::max(1, std::atoi(argv[i + 1]));
    else if (flag == "--dtype")
      dtype = parse_dtype(argv[i + 1], "--dtype");
    else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  auto comm = make_mpi_world_communicator();
  Communicator& c = *comm;
  const int n = c.size();
  const bool root = c.rank() == 0;
  if (root) {
    std::printf("all-reduce %s sum, %d ranks, median of %d samples (each the slowest rank)\n",
                std::string(dtype_name(dtype)).c_str(), n, reps);
    std::printf("%9s %12s %12s %12s %12s %8s", "size", "ring ms", "ring GB/s", "native ms", "native GB/s",
                "ring/nat");
    if (dtype == DType::f32) std::printf(" %12s %12s %8s", "cmp ms", "cmp GB/s", "cmp/ring");
    std::printf("\n");
  }
  std::vector<unsigned char> buf(static_cast<size_t>(max_bytes), 0);
  // Timed on zeros: repeated sums stay finite and never denormal.
  int status = 0;
  for (int64_t bytes = min_bytes; bytes <= max_bytes; bytes *= 4) {
    const int64_t count = bytes / int64_t(dtype_size(dtype));
    if (!correct(c, buf, count, dtype)) {
      if (root) std::printf("%9s WRONG RESULT\n", human(bytes).c_str());
      status = 1;
    }
    std::fill(buf.begin(), buf.begin() + bytes, 0);
    // Enough back-to-back calls per sample that a sample lasts ~20 ms.
    const double once = sample(c, AllReduceAlgo::native, buf.data(), count, dtype, 1);
    float iters_f = float(std::clamp(0.02 / std::max(once, 1e-7), 1.0, 2000.0));
    c.all_reduce(&iters_f, 1, DType::f32, ReduceOp::max);  // every rank the same count
    const int iters = int(iters_f);
    sample(c, AllReduceAlgo::ring, buf.data(), count, dtype, 1);  // warm-up
    const bool with_cmp = dtype == DType::f32;
    if (with_cmp) sample_compressed(c, buf.data(), count, 1);  // warm-up
    std::vector<double> ring, native, cmp;
    for (int r = 0; r < reps; ++r) {
      ring.push_back(sample(c, AllReduceAlgo::ring, buf.data(), count, dtype, iters));
      native.push_back(sample(c, AllReduceAlgo::native, buf.data(), count, dtype, iters));
      if (with_cmp) cmp.push_back(sample_compressed(c, buf.data(), count, iters));
    }
    const double tr = median(ring), tn = median(native);
    const double factor = n > 1 ? 2.0 * (n - 1) / n : 0.0;
    if (root) {
      std::printf("%9s %12.3f %12.2f %12.3f %12.2f %8.2f", human(bytes).c_str(), tr * 1e3,
                  double(bytes) / tr * factor / 1e9, tn * 1e3, double(bytes) / tn * factor / 1e9, tn / tr);
      if (with_cmp) {
        const double tc = median(cmp);
        std::printf(" %12.3f %12.2f %8.2f", tc * 1e3, double(bytes) / tc * factor / 1e9, tr / tc);
      }
      std::printf("\n");
    }
    std::fflush(stdout);
  }
  return status;
}
