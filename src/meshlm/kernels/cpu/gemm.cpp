#include "meshlm/kernels/cpu/gemm.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <unordered_map>
#include <vector>
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>

#include "meshlm/core/error.hpp"
#include "meshlm/core/timer.hpp"
#include "meshlm/kernels/cpu/convert.hpp"

namespace meshlm::cpu {

namespace {

using dims = dnnl::memory::dims;
using dt = dnnl::memory::data_type;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& stream() {
  static dnnl::stream s(engine());
  return s;
}

// Whether this CPU's oneDNN has a bf16 matmul (AVX512_BF16 or AMX; oneDNN 2.6 has none for
// AVX2-only CPUs). Without one, bf16 products run as f32 products of operands rounded to bf16:
// the same products (exact in f32) with f32 accumulation, only the summation order differs.
bool native_bf16() {
  static const bool ok = [] {
    try {
      dnnl::memory::desc a({4, 4}, dt::bf16, {4, 1}), b({4, 4}, dt::bf16, {4, 1}), c({4, 4}, dt::f32, {4, 1});
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), engine());
      return true;
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return ok;
}

// The element type the operands of a product in `p` are given to oneDNN in.
dt operand_type(Precision p) { return p == Precision::bf16 && native_bf16() ? dt::bf16 : dt::f32; }

// Everything that selects a primitive: shapes, strides, flags and alpha's bits.
using Key = std::array<int64_t, 21>;

struct Cached {
  dnnl::matmul prim;
  dnnl::memory::desc a, b, c, bias;
};

Key key_of(const GemmArgs& g) {
  uint32_t alpha_bits;
  static_assert(sizeof(alpha_bits) == sizeof(g.alpha));
  std::memcpy(&alpha_bits, &g.alpha, 4);
  return {g.b0,     g.b1,     g.M,      g.N,       g.K,       g.A.s_b0,      g.A.s_b1,
          g.A.s_row, g.A.s_col, g.B.s_b0, g.B.s_b1,  g.B.s_row, g.B.s_col,     g.c_b0,
          g.c_b1,   g.c_row,  g.bias != nullptr, g.accumulate, int64_t(alpha_bits), int64_t(g.compute), 0};
}

Cached make_primitive(const GemmArgs& g) {
  // Batch strides of a size-1 batch dimension are irrelevant; oneDNN still wants them sane.
  auto bs = [](int64_t n, int64_t s, int64_t fallback) { return n == 1 ? fallback : s; };
  const int64_t a_span = g.M * g.K, b_span = g.K * g.N, c_span = g.M * g.N;
  const dt in = operand_type(g.compute);
  dnnl::memory::desc a({g.b0, g.b1, g.M, g.K}, in,
                       {bs(g.b0, g.A.s_b0, g.b1 * a_span), bs(g.b1, g.A.s_b1, a_span), g.A.s_row, g.A.s_col});
  dnnl::memory::desc b({g.b0, g.b1, g.K, g.N}, in,
                       {bs(g.b0, g.B.s_b0, g.b1 * b_span), bs(g.b1, g.B.s_b1, b_span), g.B.s_row, g.B.s_col});
  dnnl::memory::desc c({g.b0, g.b1, g.M, g.N}, dt::f32,
                       {bs(g.b0, g.c_b0, g.b1 * c_span), bs(g.b1, g.c_b1, c_span), g.c_row, 1});
  dnnl::memory::desc bias;
  if (g.bias) bias = dnnl::memory::desc({1, 1, 1, g.N}, dt::f32, {g.N, g.N, g.N, 1});
  dnnl::primitive_attr attr;
  if (g.alpha != 1.0f) attr.set_output_scales(0, {g.alpha});
  if (g.accumulate) {
    dnnl::post_ops po;
    po.append_sum(1.0f);
    attr.set_post_ops(po);
  }
  dnnl::matmul::desc desc = g.bias ? dnnl::matmul::desc(a, b, bias, c) : dnnl::matmul::desc(a, b, c);
  dnnl::matmul::primitive_desc pd(desc, attr, engine());
  return {dnnl::matmul(pd), a, b, c, bias};
}

// Elements from the first to the last one an operand view touches (its strides are positive).
int64_t extent(const MatrixRef& m, int64_t b0, int64_t b1, int64_t rows, int64_t cols) {
  return 1 + (b0 - 1) * m.s_b0 + (b1 - 1) * m.s_b1 + (rows - 1) * m.s_row + (cols - 1) * m.s_col;
}

// A low-precision copy of an operand's whole extent, so the view's strides still apply.
// Thread-local scratch: grows to the largest operand and is reused.
const void* lowered(const MatrixRef& m, int64_t n, Precision p, int slot) {
  if (operand_type(p) == dt::bf16) {
    thread_local std::vector<uint16_t> scratch[2];
    std::vector<uint16_t>& s = scratch[slot];
    if (s.size() < size_t(n)) s.resize(size_t(n));
    to_bf16(m.ptr, s.data(), n);
    return s.data();
  }
  thread_local std::vector<float> scratch[2];
  std::vector<float>& s = scratch[slot];
  if (s.size() < size_t(n)) s.resize(size_t(n));
  if (p == Precision::bf16)
    round_through_bf16(m.ptr, s.data(), n);
  else
    round_through_f16(m.ptr, s.data(), n);
  return s.data();
}

}  // namespace

void gemm(const GemmArgs& g) {
  MESHLM_ASSERT(g.M > 0 && g.N > 0 && g.K > 0 && g.b0 > 0 && g.b1 > 0, "gemm dims ", g.M, "x", g.N, "x", g.K);
  static std::mutex mu;
  static std::map<Key, Cached> cache;
  const Cached* p;
  {
    std::lock_guard<std::mutex> lock(mu);
    Key key = key_of(g);
    auto it = cache.find(key);
    if (it == cache.end()) it = cache.emplace(key, make_primitive(g)).first;
    p = &it->second;
  }
  const void* a_ptr = g.A.ptr;
  const void* b_ptr = g.B.ptr;
  if (g.compute != Precision::fp32) {
    a_ptr = lowered(g.A, extent(g.A, g.b0, g.b1, g.M, g.K), g.compute, 0);
    b_ptr = lowered(g.B, extent(g.B, g.b0, g.b1, g.K, g.N), g.compute, 1);
  }
  dnnl::memory a(p->a, engine(), const_cast<void*>(a_ptr));
  dnnl::memory b(p->b, engine(), const_cast<void*>(b_ptr));
  dnnl::memory c(p->c, engine(), g.C);
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}};
  if (g.bias) args.emplace(DNNL_ARG_BIAS, dnnl::memory(p->bias, engine(), const_cast<float*>(g.bias)));
  p->prim.execute(stream(), args);
  stream().wait();
}

double gemm_peak_gflops(Precision p, int64_t n, int reps) {
  const dt t = operand_type(p);
  const size_t esize = t == dt::bf16 ? 2 : 4;
  dnnl::memory::desc a({n, n}, t, {n, 1}), b({n, n}, t, {n, 1}), c({n, n}, dt::f32, {n, 1});
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), engine());
  dnnl::matmul prim(pd);
  // Finite, non-zero operands: the bit pattern 0x3c00 repeated (in f32 and in bf16 alike).
  std::vector<uint16_t> abuf(size_t(n * n) * esize / 2, 0x3c00), bbuf(abuf.size(), 0x3c00);
  std::vector<float> cbuf(size_t(n * n));
  dnnl::memory am(a, engine(), abuf.data()), bm(b, engine(), bbuf.data()), cm(c, engine(), cbuf.data());
  double best = 0;
  for (int r = 0; r <= reps; ++r) {
    const Timer t;
    prim.execute(stream(), {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
    stream().wait();
    const double s = t.seconds();
    if (r > 0) best = std::max(best, 2.0 * double(n) * double(n) * double(n) / s / 1e9);
  }
  return best;
}

}  // namespace meshlm::cpu
