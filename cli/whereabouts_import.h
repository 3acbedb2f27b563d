// Reading a whereabouts export (`kubectl get ippools.whereabouts.cni.cncf.io -A -o json`, and
// `overlappingrangeipreservations`) into what abode should hold: a pool per IPPool, named and placed in a
// network exactly as the abode CNI plugin names the pool of that range, and an allocation per entry of
// spec.allocations (address = the range's network address + the entry's decimal offset; owner = the plugin's
// owner key of container id and interface; podref as labels). Pure: no calls to the allocator.
#ifndef ABODE_CLI_WHEREABOUTS_IMPORT_H_
#define ABODE_CLI_WHEREABOUTS_IMPORT_H_

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "abode/v1/pools.pb.h"
#include "absl/status/status.h"

namespace abode::cli {

struct ImportedAllocation {
  std::string address;
  std::string owner;
  std::map<std::string, std::string> labels;
  std::string source;  // where it came from, for messages: "FILE: IPPool NAME[OFFSET]"
};

struct ImportedPool {
  v1::PoolSpec spec;
  std::string source;
  std::vector<ImportedAllocation> allocations;
};

struct WhereaboutsImport {
  std::vector<ImportedPool> pools;
  // OverlappingRangeIPReservations, by the whereabouts network name they were made in ("" unnamed).
  std::vector<std::pair<std::string, ImportedAllocation>> reservations;
  // Things the export holds that cannot be imported as they are, or inconsistencies inside it.
  std::vector<std::string> conflicts;
  std::vector<std::string> notes;
};

// Adds the IPPool and OverlappingRangeIPReservation objects of one file (a List, or a single object) to
// `into`. INVALID_ARGUMENT naming the file and the object for what cannot be read at all.
absl::Status ReadWhereaboutsExport(std::string_view text, const std::string& file, WhereaboutsImport& into);

// Uses a whereabouts network configuration (the JSON of a NetworkAttachmentDefinition's config) for the pools
// of its ranges: their range_start, range_end, exclude and gateway, so that the imported pools are the ones
// the plugin expects for that configuration.
absl::Status ApplyNetworkConfig(std::string_view text, const std::string& file, WhereaboutsImport& into);

// Folds the reservations into the pools: a reservation of an address no IPPool lists becomes an allocation
// of the pool whose range holds it; one that disagrees with its IPPool entry is a conflict.
void ResolveReservations(WhereaboutsImport& import);

}  // namespace abode::cli

#endif  // ABODE_CLI_WHEREABOUTS_IMPORT_H_
