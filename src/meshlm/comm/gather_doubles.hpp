#pragma once
// Every rank's doubles, in rank order, on every rank of a group: for figures that must be
// added up in the same order everywhere (norms, losses) or reported by one rank (memory).
// They travel as pairs of 32-bit words; no arithmetic touches them on the way.
#include <span>
#include <vector>

#include "meshlm/comm/communicator.hpp"

namespace meshlm {

// values.size() doubles from every rank (the same count on each): rank r's at r·values.size().
std::vector<double> all_gather_doubles(Communicator& comm, std::span<const double> values);
inline std::vector<double> all_gather_doubles(Communicator& comm, double value) {
  return all_gather_doubles(comm, std::span<const double>(&value, 1));
}

}  // namespace meshlm
