#pragma once
// One entry of a kernel table: a function pointer that model code calls like the function
// itself, plus an optional per-op counter. A table built for profiling (profile.hpp) has its
// entries count into a KernelProfile; a plain table pays one well-predicted branch per call.
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "meshlm/core/timer.hpp"

namespace meshlm {

// An op's total time and number of calls, in a KernelProfile.
struct OpTime {
  std::string_view op;  // the table entry, e.g. "linear_forward"
  double seconds = 0;
  int64_t calls = 0;
};

template <class Signature>
class KernelEntry;

template <class R, class... Args>
class KernelEntry<R(Args...)> {
 public:
  using Function = R (*)(Args...);

  KernelEntry() = default;
  KernelEntry(Function f) : f_(f) {}  // implicit: a table is filled by `table.op = impl::op`

  R operator()(Args... args) const {
    if (!counter_) [[likely]] return f_(args...);
    return timed(args...);
  }

  Function function() const { return f_; }
  explicit operator bool() const { return f_ != nullptr; }
  const OpTime* counter() const { return counter_; }
  // Every later call through this entry adds its time and count to `counter` (null: none).
  void count_into(OpTime* counter) { counter_ = counter; }

 private:
  R timed(Args... args) const {
    const Timer t;
    if constexpr (std::is_void_v<R>) {
      f_(args...);
      add(t.seconds());
    } else {
      R r = f_(args...);
      add(t.seconds());
      return r;
    }
  }
  void add(double seconds) const {
    counter_->seconds += seconds;
    ++counter_->calls;
  }

  Function f_ = nullptr;
  OpTime* counter_ = nullptr;
};

}  // namespace meshlm
