// What abodectl prints: a table for people or stable JSON for scripts. The JSON shapes are a contract with
// scripts; output_test pins every key.
#ifndef ABODE_CLI_OUTPUT_H_
#define ABODE_CLI_OUTPUT_H_

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "abode/v1/allocator.pb.h"
#include "abode/v1/pools.pb.h"
#include "google/protobuf/repeated_ptr_field.h"

namespace abode::cli {

enum class OutputFormat { kTable, kJson };

template <typename T>
using Repeated = google::protobuf::RepeatedPtrField<T>;

// Left-aligned columns separated by three spaces, header first, one line per row.
class Table {
 public:
  explicit Table(std::vector<std::string> header);
  // REQUIRES: row has as many cells as the header.
  void AddRow(std::vector<std::string> row);
  std::string Render() const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// Shared by the writers of every resource.
nlohmann::json StringOrNull(const std::string& text);  // null for ""
std::string OrNone(const std::string& text);           // "-" for "", in tables
// RFC3339, or null for 0 (unset).
nlohmann::json TimeOrNull(std::int64_t unix_ms);
// Labels as a JSON object / as "k=v,k2=v2" sorted by key.
nlohmann::json LabelsJson(const google::protobuf::Map<std::string, std::string>& labels);
std::string LabelsText(const google::protobuf::Map<std::string, std::string>& labels);

template <typename Message>
nlohmann::json JsonArray(const google::protobuf::RepeatedPtrField<Message>& items,
                         nlohmann::json (*to_json)(const Message&)) {
  nlohmann::json array = nlohmann::json::array();
  for (const Message& item : items) array.push_back(to_json(item));
  return array;
}

// "FIELD" then the value at column 14, one line each: the detail view of one object.
std::string DetailLines(const std::vector<std::pair<std::string_view, std::string>>& fields);

// "lowest" / "sequential", as spelled on the command line.
std::string StrategyName(v1::AllocationStrategy strategy);
// "workload" / "external", as spelled on the command line.
std::string PurposeName(v1::PoolPurpose purpose);

// Keys: name, cidr, network, strategy, purpose, range_start, range_end (null when unset), exclude (array),
// gateway (null when unset), size, used, free (numbers of any size), utilization (percent, 0..100).
nlohmann::json PoolJson(const v1::Pool& pool);
// Keys, exactly: address, owner, pool, node, labels (object), revision, network, prefix_length,
// expire_time (RFC3339, or null without expiry).
nlohmann::json AllocationJson(const v1::Allocation& allocation);
// Keys: owner, pool, node, address, from, to (null while held), reason (null while held).
nlohmann::json HistoryEntryJson(const v1::HistoryEntry& entry);

// NAME NETWORK CIDR SIZE USED FREE UTILIZATION.
std::string PoolsTable(const Repeated<v1::Pool>& pools);
// One pool, one "FIELD  value" line per field.
std::string PoolDetail(const v1::Pool& pool);
// ADDRESS POOL OWNER NODE LABELS EXPIRES.
std::string AllocationsTable(const Repeated<v1::Allocation>& allocations);
// OWNER POOL NODE FROM TO REASON, in the order given (the server sends newest first).
std::string HistoryTable(const Repeated<v1::HistoryEntry>& entries);

// Where a command's result goes, in the format the user chose. Only the chosen rendering is computed.
class Output {
 public:
  Output(OutputFormat format, std::ostream& out) : format_(format), out_(out) {}

  void Write(const std::function<nlohmann::json()>& json, const std::function<std::string()>& table);
  // One record of a stream: a JSON line, or `text` and a newline. Flushed, so a reader sees it at once.
  void WriteLine(const std::function<nlohmann::json()>& json, const std::function<std::string()>& text);

 private:
  OutputFormat format_;
  std::ostream& out_;
};

void WritePool(Output& output, const v1::Pool& pool);
void WritePools(Output& output, const Repeated<v1::Pool>& pools);
void WriteAllocation(Output& output, const v1::Allocation& allocation);
void WriteAllocations(Output& output, const Repeated<v1::Allocation>& allocations);
void WriteHistory(Output& output, const Repeated<v1::HistoryEntry>& entries);

}  // namespace abode::cli

#endif  // ABODE_CLI_OUTPUT_H_
