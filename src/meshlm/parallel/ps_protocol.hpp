#pragma once
// The messages between parameter-server workers and servers (parallel.sync = ps), over the
// job's communicator. World ranks 0 .. W-1 are the workers (the data-parallel mesh), W .. W+S-1
// the servers; server s owns the key range ps_key_range(n, S, s) of the flat parameter buffer.
//
// Every exchange starts with a header that every worker sends to every server; a server takes
// the headers of a round from workers 0 .. W-1 in order, so all workers must issue the same
// commands in the same order (they do: each is a step of the trainer or a checkpoint's
// collective). Payloads follow on their own tags:
//   push        each worker: its weighted gradients of the range (f32 or bf16); the server sums
//               them in worker order and answers each worker with the sum's squared norm
//   apply       the server updates its range (lr, grad_scale, optimizer steps before the
//               update) and sends the new values to every worker (the pull)
//   skip        the step's gradients are dropped (fp16 overflow)
//   set_params  worker 0: the range's parameters (a start, --init-from, a resumed checkpoint)
//   set_state   worker 0: one optimizer state buffer's range (index in `arg`)
//   read_state  the server sends each optimizer state buffer's range to every worker
//   finish      the workers are done (or failing together): the serve loop ends with the exit
//               code in `arg`
#include <cstdint>
#include <cstring>

#include "meshlm/core/range.hpp"

namespace meshlm {

enum class PsCommand : int32_t { push = 1, apply, skip, set_params, set_state, read_state, finish };

struct PsHeader {
  PsCommand command = PsCommand::finish;
  int32_t arg = 0;          // set_state: the state buffer's index; finish: the exit code
  int64_t steps = 0;        // apply: the optimizer's steps before this update
  float lr = 0, grad_scale = 1;
};
static_assert(sizeof(PsHeader) % 4 == 0);
inline constexpr int64_t kPsHeaderWords = int64_t(sizeof(PsHeader) / 4);  // sent as i32 words

// Tags of the protocol's messages (apart from the other point-to-point traffic of the job).
inline constexpr int kPsHeaderTag = 7101, kPsDataTag = 7102, kPsReplyTag = 7103;

// The elements server `s` of `servers` owns: contiguous, balanced by bytes (every element is an
// f32), cutting through tensors where they fall.
inline Range ps_key_range(size_t n, int servers, int s) { return even_part(n, servers, s); }

// A double travels as two i32 words (the communicator has no f64).
inline void ps_pack_double(double v, int32_t out[2]) { std::memcpy(out, &v, sizeof v); }
inline double ps_unpack_double(const int32_t in[2]) {
  double v;
  std::memcpy(&v, in, sizeof v);
  return v;
}

}  // namespace meshlm
