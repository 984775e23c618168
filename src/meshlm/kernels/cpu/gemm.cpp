#include "meshlm/kernels/cpu/gemm.hpp"

#include <array>
#include <cstring>
#include <unordered_map>
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>

#include "meshlm/core/error.hpp"

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
          g.c_b1,   g.c_row,  g.bias != nullptr, g.accumulate, int64_t(alpha_bits), 0, 0};
}

Cached make_primitive(const GemmArgs& g) {
  // Batch strides of a size-1 batch dimension are irrelevant; oneDNN still wants them sane.
  auto bs = [](int64_t n, int64_t s, int64_t fallback) { return n == 1 ? fallback : s; };
  const int64_t a_span = g.M * g.K, b_span = g.K * g.N, c_span = g.M * g.N;
  dnnl::memory::desc a({g.b0, g.b1, g.M, g.K}, dt::f32,
                       {bs(g.b0, g.A.s_b0, g.b1 * a_span), bs(g.b1, g.A.s_b1, a_span), g.A.s_row, g.A.s_col});
  dnnl::memory::desc b({g.b0, g.b1, g.K, g.N}, dt::f32,
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
  dnnl::memory a(p->a, engine(), const_cast<float*>(g.A.ptr));
  dnnl::memory b(p->b, engine(), const_cast<float*>(g.B.ptr));
  dnnl::memory c(p->c, engine(), g.C);
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}};
  if (g.bias) args.emplace(DNNL_ARG_BIAS, dnnl::memory(p->bias, engine(), const_cast<float*>(g.bias)));
  p->prim.execute(stream(), args);
  stream().wait();
}

}  // namespace meshlm::cpu
