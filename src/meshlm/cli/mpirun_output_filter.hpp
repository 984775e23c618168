#pragma once
// What `meshlm ... --nproc N` lets through of mpirun's standard error: every line, except
// Open MPI's banners about a process that exited with a non-zero status ("Primary job
// terminated normally, but 1 process returned a non-zero exit code", "mpirun detected that one
// or more processes exited with non-zero status", prterun's "... with non-zero status"). Such a
// process is a meshlm rank that has already printed its one "error: ..." line; the banner would
// only repeat it. The same holds for the banner of MPI_Abort ("MPI_ABORT was invoked on rank
// ..."), by which a meshlm rank that met an error alone ends the job after printing its line,
// and for Open MPI's count of such banners when several ranks abort, its failures to show one
// while the job ends, and its shared-memory transport's complaint about a peer that died; and
// mpirun's "Forwarding signal N to job" when meshlm continues it after a terminal's Ctrl-Z. Every other banner (a rank
// killed by a signal, a failed start) and all of the ranks' own output pass unchanged.
#include <string>
#include <string_view>

namespace meshlm {

class MpirunOutputFilter {
 public:
  // Feeds a chunk of mpirun's output; returns the text to show now.
  std::string feed(std::string_view chunk);
  // At the end of the output: what is still held (an unfinished line or banner).
  std::string finish();

 private:
  std::string line_;    // the current line, not yet ended
  std::string banner_;  // lines of a banner since its opening rule, while it is open
  bool in_banner_ = false;
  bool after_abort_count_ = false;  // the last line was Open MPI's count of MPI_Abort banners
  std::string take_line(const std::string& line);
};

}  // namespace meshlm
