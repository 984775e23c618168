#include "meshlm/train/launch_layout.hpp"

#include "meshlm/core/error.hpp"
#include "meshlm/train/config_lookup.hpp"

namespace meshlm {

ParallelConfig unset_layout() {
  ParallelConfig p;
  p.dp = 0;
  return p;
}

void fit_layout_to_processes(ParallelConfig& p, int64_t processes) {
  if (p.sync == SyncKind::ps && p.ps_servers >= 1) {
    // The servers come off the top: the rest of the processes are the workers' mesh.
    if (p.ps_servers >= processes)
      throw UserError(cat("parallel.ps_servers (", p.ps_servers, ") leaves no worker among the ", processes,
                          processes == 1 ? " process launched" : " processes launched",
                          ": start more processes than servers"));
    if (p.dp >= 1 && p.tp >= 1 && p.pp >= 1 && p.processes() != processes)
      throw UserError(cat("parallel.dp (", p.dp, ") x pp ", p.pp, " x tp ", p.tp, " + parallel.ps_servers ",
                          p.ps_servers, " = ", p.processes(), " ranks does not match the ", processes,
                          " processes launched"));
    processes -= p.ps_servers;
  }
  if (p.dp != 0 || p.tp < 1 || p.pp < 1) return;  // given, or invalid (validate() names the key)
  const int64_t group = p.tp * p.pp;
  if (processes % group != 0)
    throw UserError(cat("tp ", p.tp, " x pp ", p.pp, " = ", group, " does not divide the ", processes,
                        processes == 1 ? " process launched" : " processes launched",
                        " (without --dp, dp = processes / (tp x pp): start a multiple of ", group,
                        " processes with mpirun -np N or meshlm train --nproc N)"));
  p.dp = processes / group;
}

RunConfig requested_config(const std::string& config, const Overrides& overrides) {
  RunConfig cfg;
  cfg.parallel = unset_layout();
  if (!config.empty()) apply_config(cfg, config);
  for (const auto& [k, v] : overrides) apply_override(cfg, k, v);
  return cfg;
}

ParallelConfig requested_layout(const std::string& config, const Overrides& overrides) {
  return requested_config(config, overrides).parallel;
}

}  // namespace meshlm
