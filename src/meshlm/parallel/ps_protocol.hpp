#pragma once
// The messages between parameter-server workers and servers (parallel.sync = ps), over the
// job's communicator. World ranks 0 .. W-1 are the workers (the dp x tp mesh), W .. W+S-1 the
// servers. The servers' key space is the workers' flat parameter buffers, one tensor-parallel
// shard after another (PsKeySpace); server s owns its range ps_key_range(N, S, s), and worker
// rank w exchanges with it the part that falls in w's shard. Without tensor parallelism the key
// space is the one flat buffer.
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
//   set_params  the first worker group (ranks 0 .. tp-1): the range's parameters (a start,
//               --init-from, a resumed checkpoint)
//   set_state   the first worker group: one optimizer state buffer's range (index in `arg`)
//   read_state  the server sends each optimizer state buffer's range to every worker
//   finish      the workers are done (or failing together): the serve loop ends with the exit
//               code in `arg`
//   read_params the server sends its range's parameters to every worker
//
// Async and ssp modes (parallel.ps_mode) take the headers of each worker as they come. One
// command is a worker's own:
//   update      a worker's gradients of its step (pushed on the data tag, possibly before the
//               header), with its learning rate and scale: the server applies them at once
//               and answers that worker with a PsReply and its range's newest parameters;
//               under ssp it holds the answer back until the slowest worker is close enough.
//               `arg`: the worker's stop signal (0: none).
//   meet        (a round) every worker continues from step `steps`, the meeting's
// Every command but update is a round, as in sync mode: the server waits until every worker has
// sent it (taking no more from a worker that has), so that a round sees every update sent
// before it.
//
// Meetings (async, ssp): workers take steps at their own pace, and the run's step is the
// leading worker's. Server 0 calls a meeting when a worker finishes a step of the schedule
// (PsSchedule: an evaluation's, a checkpoint's, the last) or sends a stop signal: it tells each
// worker, with its next answer, the step after which it stops (the one it is computing, or the
// one it just pushed) and the meeting's step, the leader's. Every worker then sends `meet` and
// continues from that step (a slower worker skips the steps it did not take), and the rounds
// of the evaluation or checkpoint follow.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "meshlm/core/range.hpp"

namespace meshlm {

enum class PsCommand : int32_t { push = 1, apply, skip, set_params, set_state, read_state, finish, read_params, update, meet };

struct PsHeader {
  PsCommand command = PsCommand::finish;
  int32_t arg = 0;          // set_state: the state buffer's index; finish: the exit code
  int64_t steps = 0;        // apply: the optimizer's steps before this update
  float lr = 0, grad_scale = 1;
};
static_assert(sizeof(PsHeader) % 4 == 0);
inline constexpr int64_t kPsHeaderWords = int64_t(sizeof(PsHeader) / 4);  // sent as i32 words

// A server's answer to an update (async, ssp). Versions count whole steps: the server's version
// is the number of steps every worker has pushed (the slowest worker's count), and an update's
// staleness is its step minus the version of the parameters it was computed on, that is how
// many steps of some worker's updates those parameters lacked. The staleness figures cover
// every update the server applied since its previous answer to this worker.
struct PsReply {
  int64_t version = 0;          // of the parameters that follow
  int64_t updates = 0;          // applied since the previous answer to this worker
  int64_t staleness_sum = 0;    // of those updates
  int64_t staleness_max = -1;   // of those updates (-1: none)
  // Server 0: a meeting is called; this worker joins it after its step `meet_after` (0: none
  // called), and every worker continues from step `meet_step`.
  int64_t meet_after = 0, meet_step = 0;
  int64_t meet_signal = 0;  // the stop signal that called it (0: the schedule)
};
static_assert(sizeof(PsReply) % 4 == 0);
inline constexpr int64_t kPsReplyWords = int64_t(sizeof(PsReply) / 4);

// The steps at which the workers meet (async, ssp): every evaluation's and checkpoint's, and
// the last.
struct PsSchedule {
  int64_t steps = 0, eval_every = 0, save_every = 0;
  // The first of them after step `after`.
  int64_t next_after(int64_t after) const {
    int64_t next = steps;
    for (int64_t every : {eval_every, save_every})
      if (every > 0) next = std::min(next, (after / every + 1) * every);
    return next;
  }
};

// Tags of the protocol's messages (apart from the other point-to-point traffic of the job).
inline constexpr int kPsHeaderTag = 7101, kPsDataTag = 7102, kPsReplyTag = 7103;

// The elements server `s` of `servers` owns: contiguous, balanced by bytes (every element is an
// f32), cutting through tensors where they fall.
inline Range ps_key_range(size_t n, int servers, int s) { return even_part(n, servers, s); }

// The servers' key space: the flat buffers of the tp tensor-parallel shards one after another
// (every shard has the same layout and size: gpt_param_specs pads the vocabulary to a multiple
// of tp). Worker rank w is the mesh's rank (w / tp) * tp + w % tp: shard w % tp of group w / tp.
struct PsKeySpace {
  size_t shard = 0;  // elements of one shard's flat buffer
  int tp = 1;
  size_t total() const { return shard * size_t(tp); }
  Range segment(int t) const { return Range{shard * size_t(t), shard}; }
  // The part of `keys` (a range of the key space) that worker shard `t` holds, in the shard's
  // own offsets (empty when none).
  Range in_shard(Range keys, int t) const {
    const Range r = intersect(keys, segment(t));
    return r.empty() ? Range{0, 0} : Range{r.begin - segment(t).begin, r.count};
  }
};

// A double travels as two i32 words (the communicator has no f64).
inline void ps_pack_double(double v, int32_t out[2]) { std::memcpy(out, &v, sizeof v); }
inline double ps_unpack_double(const int32_t in[2]) {
  double v;
  std::memcpy(&v, in, sizeof v);
  return v;
}

}  // namespace meshlm
