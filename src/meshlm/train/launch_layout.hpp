#pragma once
// The mesh a launch asks for. A run's layout is this launch's choice (a resumed run takes no
// [parallel] keys from its checkpoint): the config file's [parallel] section and the command
// line set it, and when neither sets parallel.dp, dp is the number of processes launched
// divided by tp · pp (`mpirun -np 4 meshlm train --tp 2` runs dp 2).
#include <cstdint>
#include <string>

#include "meshlm/train/run_config.hpp"

namespace meshlm {

// The defaults with dp unset (0), before the config file and the command line are read.
ParallelConfig unset_layout();
// dp unset: dp = processes / (tp · pp), a UserError when tp · pp does not divide the processes.
// dp set: unchanged (the mesh checks dp · pp · tp against the processes when it is built).
// With parallel.sync = ps the last ps_servers processes are servers, not counted in the mesh:
// a UserError when they leave no worker, or a given dp does not add up.
void fit_layout_to_processes(ParallelConfig& layout, int64_t processes);
// [parallel] as the config file (empty: none) and the command line set it, dp 0 where unset:
// what `meshlm train --nproc N` checks before it launches N processes.
ParallelConfig requested_layout(const std::string& config, const Overrides& overrides);
// The whole config as the config file and the command line set it (dp 0 where unset): what the
// supervisor of an elastic job keeps the global batch of.
RunConfig requested_config(const std::string& config, const Overrides& overrides);

}  // namespace meshlm
