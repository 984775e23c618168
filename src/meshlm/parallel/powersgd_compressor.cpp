#include "meshlm/parallel/powersgd_compressor.hpp"

#include <algorithm>
#include <cmath>

#include <omp.h>

#include "meshlm/core/error.hpp"
#include "meshlm/core/rng.hpp"

namespace meshlm {

namespace {
constexpr uint64_t kInitialQSeed = 0x9e3779b97f4a7c15ull;  // any fixed value: every rank draws the same Q

// out (rows×r) = m (rows×cols) · q (cols×r), all row-major.
void times(const float* m, const float* q, float* out, size_t rows, size_t cols, size_t r) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < rows; ++i) {
    float* o = out + i * r;
    std::fill(o, o + r, 0.0f);
    const float* row = m + i * cols;
    for (size_t j = 0; j < cols; ++j)
      for (size_t c = 0; c < r; ++c) o[c] += row[j] * q[j * r + c];
  }
}

// out (cols×r) = mᵀ · p (rows×r): each thread owns a block of out's rows and runs over m's rows
// in order, so the sums do not depend on the threads.
void times_transposed(const float* m, const float* p, float* out, size_t rows, size_t cols, size_t r) {
  std::fill(out, out + cols * r, 0.0f);
#pragma omp parallel
  {
    const Range mine = even_part(cols, omp_get_num_threads(), omp_get_thread_num());
    for (size_t i = 0; i < rows; ++i)
      for (size_t j = mine.begin; j < mine.end(); ++j)
        for (size_t c = 0; c < r; ++c) out[j * r + c] += m[i * cols + j] * p[i * r + c];
  }
}
}  // namespace

void orthonormalise_columns(float* p, size_t rows, size_t r) {
  std::vector<double> v(rows * r);
  std::copy(p, p + rows * r, v.begin());
  auto dot = [&](size_t a, size_t b) {
    double s = 0;
    for (size_t i = 0; i < rows; ++i) s += v[i * r + a] * v[i * r + b];
    return s;
  };
  for (size_t c = 0; c < r; ++c) {
    const double before = std::sqrt(dot(c, c));
    for (size_t d = 0; d < c; ++d) {
      const double proj = dot(d, c);
      for (size_t i = 0; i < rows; ++i) v[i * r + c] -= proj * v[i * r + d];
    }
    const double norm = std::sqrt(dot(c, c));
    // Left with rounding noise only: the column adds no direction.
    const double scale = norm <= 1e-5 * before ? 0.0 : 1.0 / norm;
    for (size_t i = 0; i < rows; ++i) v[i * r + c] *= scale;
  }
  std::copy(v.begin(), v.end(), p);
}

PowerSgdCompressor::PowerSgdCompressor(const ParamLayout& layout, int64_t rank)
    : GradientCompressor(layout.total()), n_(layout.total()), rank_(size_t(rank)) {
  MESHLM_ASSERT(rank >= 1, "PowerSGD rank ", rank);
  size_t largest = 0;  // the largest smaller dimension of a matrix
  for (const ParamView& v : layout.views()) {
    const auto& shape = v.spec.shape;
    if (shape.size() != 2) continue;
    const size_t smaller = size_t(std::min(shape[0], shape[1]));
    largest = std::max(largest, smaller);
    if (smaller < rank_) continue;
    matrices_.push_back({v.offset, size_t(shape[0]), size_t(shape[1]), p_elems_, q_elems_});
    p_elems_ += size_t(shape[0]) * rank_;
    q_elems_ += size_t(shape[1]) * rank_;
  }
  // Everything else, the alignment gaps between tensors included, travels uncompressed.
  size_t next = 0;
  for (const Matrix& m : matrices_) {
    MESHLM_ASSERT(m.offset >= next, "tensors out of order in the layout");
    if (m.offset > next) dense_.push_back({next, m.offset - next});
    next = m.offset + m.rows * m.cols;
  }
  if (next < n_) dense_.push_back({next, n_ - next});
  for (const Range& d : dense_) dense_elems_ += d.count;
  if (matrices_.empty())
    throw UserError(cat("parallel.compress_rank = ", rank, " is larger than every weight matrix (the largest has ",
                        largest, " in its smaller dimension): PowerSGD would compress nothing"));
  q_.resize(q_elems_);
  for (const Matrix& m : matrices_)
    for (size_t i = 0; i < m.cols * rank_; ++i) q_[m.q_at + i] = normal_at(kInitialQSeed, m.offset, i);
}

std::string PowerSgdCompressor::describe() const {
  return cat("PowerSGD (rank ", rank_, ", ", matrices_.size(), " matrices) all-reduce");
}

void PowerSgdCompressor::reduce(Communicator& comm, float* grads, Range range) {
  MESHLM_ASSERT(range.begin == 0 && range.count == n_, "PowerSGD reduces the whole buffer");
  const size_t r = rank_;
  // One all-reduce for every P and the uncompressed elements, one for every Q.
  std::vector<float> first(p_elems_ + dense_elems_), second(q_elems_);
  for (const Matrix& m : matrices_) {
    float* e = residual_.data() + m.offset;
    const float* g = grads + m.offset;
    for (size_t i = 0; i < m.rows * m.cols; ++i) e[i] += g[i];  // M, what this rank has to send
    times(e, q_.data() + m.q_at, first.data() + m.p_at, m.rows, m.cols, r);
  }
  size_t at = p_elems_;
  for (const Range& d : dense_) {
    std::copy(grads + d.begin, grads + d.end(), first.begin() + ptrdiff_t(at));
    at += d.count;
  }
  comm.all_reduce(first.data(), int64_t(first.size()), DType::f32, ReduceOp::sum);
  count_all_reduce(comm, int64_t(first.size() * sizeof(float)));

  for (const Matrix& m : matrices_) {
    float* p = first.data() + m.p_at;
    float* q = second.data() + m.q_at;
    orthonormalise_columns(p, m.rows, r);
    float* e = residual_.data() + m.offset;
    times_transposed(e, p, q, m.rows, m.cols, r);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < m.rows; ++i)
      for (size_t j = 0; j < m.cols; ++j) {
        float s = 0.0f;
        for (size_t c = 0; c < r; ++c) s += p[i * r + c] * q[j * r + c];
        e[i * m.cols + j] -= s;  // the residual: M − P̂·Qᵢᵀ
      }
  }
  comm.all_reduce(second.data(), int64_t(second.size()), DType::f32, ReduceOp::sum);
  count_all_reduce(comm, int64_t(second.size() * sizeof(float)));

  for (const Matrix& m : matrices_) {
    const float* p = first.data() + m.p_at;
    const float* q = second.data() + m.q_at;
    float* g = grads + m.offset;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < m.rows; ++i)
      for (size_t j = 0; j < m.cols; ++j) {
        float s = 0.0f;
        for (size_t c = 0; c < r; ++c) s += p[i * r + c] * q[j * r + c];
        g[i * m.cols + j] = s;
      }
  }
  std::copy(second.begin(), second.end(), q_.begin());  // the next step starts from the summed Q
  at = p_elems_;
  for (const Range& d : dense_) {
    std::copy(first.begin() + ptrdiff_t(at), first.begin() + ptrdiff_t(at + d.count), grads + d.begin);
    at += d.count;
  }
}

// Q of a matrix is m·r ≤ n·m elements (r ≤ n): it fits in the matrix's own range.
void PowerSgdCompressor::save_shared_state(float* out) const {
  std::fill(out, out + n_, 0.0f);
  for (const Matrix& m : matrices_) std::copy_n(q_.data() + m.q_at, m.cols * rank_, out + m.offset);
}

void PowerSgdCompressor::load_shared_state(const float* in) {
  for (const Matrix& m : matrices_) std::copy_n(in + m.offset, m.cols * rank_, q_.data() + m.q_at);
}

}  // namespace meshlm
