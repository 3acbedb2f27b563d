#include "cli/output.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/json_text.h"
#include "cli/pool_usage.h"
#include "cli/time_text.h"

namespace abode::cli {
namespace {

constexpr std::string_view kNone = "-";

std::map<std::string, std::string> SortedLabels(const google::protobuf::Map<std::string, std::string>& labels) {
  return {labels.begin(), labels.end()};
}

}  // namespace

nlohmann::json StringOrNull(const std::string& text) {
  return text.empty() ? nlohmann::json(nullptr) : nlohmann::json(text);
}

std::string OrNone(const std::string& text) { return text.empty() ? std::string(kNone) : text; }

nlohmann::json TimeOrNull(std::int64_t unix_ms) {
  return unix_ms == 0 ? nlohmann::json(nullptr) : nlohmann::json(FormatUnixMillis(unix_ms));
}

nlohmann::json LabelsJson(const google::protobuf::Map<std::string, std::string>& labels) {
  return nlohmann::json(SortedLabels(labels));
}

std::string LabelsText(const google::protobuf::Map<std::string, std::string>& labels) {
  return absl::StrJoin(SortedLabels(labels), ",", absl::PairFormatter("="));
}

std::string DetailLines(const std::vector<std::pair<std::string_view, std::string>>& fields) {
  std::string text;
  for (const auto& [field, value] : fields) {
    text.append(field).append(field.size() < 13 ? 13 - field.size() : 1, ' ').append(value).append("\n");
  }
  return text;
}

Table::Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }

void Table::AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

std::string Table::Render() const {
  std::vector<std::size_t> widths(rows_.front().size(), 0);
  for (const auto& row : rows_) {
    for (std::size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  std::string text;
  for (const auto& row : rows_) {
    for (std::size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      text += row[i];
      if (i + 1 < row.size()) text.append(widths[i] - row[i].size() + 3, ' ');
    }
    text += '\n';
  }
  return text;
}

std::string StrategyName(v1::AllocationStrategy strategy) {
  switch (strategy) {
    case v1::ALLOCATION_STRATEGY_UNSPECIFIED:
    case v1::ALLOCATION_STRATEGY_LOWEST:
      return "lowest";
    case v1::ALLOCATION_STRATEGY_SEQUENTIAL:
      return "sequential";
    default:
      return absl::StrCat("strategy-", static_cast<int>(strategy));
  }
}

std::string PurposeName(v1::PoolPurpose purpose) {
  switch (purpose) {
    case v1::POOL_PURPOSE_UNSPECIFIED:
    case v1::POOL_PURPOSE_WORKLOAD:
      return "workload";
    case v1::POOL_PURPOSE_EXTERNAL:
      return "external";
    default:
      return absl::StrCat("purpose-", static_cast<int>(purpose));
  }
}

nlohmann::json PoolJson(const v1::Pool& pool) {
  const v1::PoolSpec& spec = pool.spec();
  return {
      {"name", spec.name()},
      {"cidr", spec.cidr()},
      {"network", spec.network()},
      {"strategy", StrategyName(spec.strategy())},
      {"purpose", PurposeName(spec.purpose())},
      {"range_start", StringOrNull(spec.range_start())},
      {"range_end", StringOrNull(spec.range_end())},
      {"exclude", nlohmann::json(std::vector<std::string>(spec.exclude().begin(), spec.exclude().end()))},
      {"gateway", StringOrNull(spec.gateway())},
      {"size", DecimalNumber(pool.size())},
      {"used", pool.used()},
      {"free", DecimalNumber(pool.free())},
      {"utilization", UtilizationPercent(pool.used(), pool.size())},
  };
}

nlohmann::json AllocationJson(const v1::Allocation& allocation) {
  return {
      {"address", allocation.address()},
      {"owner", allocation.owner()},
      {"pool", allocation.pool()},
      {"node", allocation.node()},
      {"labels", LabelsJson(allocation.labels())},
      {"revision", allocation.revision()},
      {"network", allocation.network()},
      {"prefix_length", allocation.prefix_length()},
      {"expire_time", TimeOrNull(allocation.expire_time_unix_ms())},
  };
}

nlohmann::json HistoryEntryJson(const v1::HistoryEntry& entry) {
  const bool held = entry.to_time_unix_ms() == 0;
  return {
      {"owner", entry.owner()},
      {"pool", entry.pool()},
      {"node", entry.node()},
      {"address", entry.address()},
      {"from", FormatUnixMillis(entry.from_time_unix_ms())},
      {"to", held ? nlohmann::json(nullptr) : nlohmann::json(FormatUnixMillis(entry.to_time_unix_ms()))},
      {"reason", held ? nlohmann::json(nullptr) : StringOrNull(entry.end_reason())},
  };
}

std::string PoolsTable(const Repeated<v1::Pool>& pools) {
  Table table({"NAME", "NETWORK", "CIDR", "SIZE", "USED", "FREE", "UTILIZATION"});
  for (const v1::Pool& pool : pools) {
    table.AddRow({pool.spec().name(), OrNone(pool.spec().network()), pool.spec().cidr(), pool.size(),
                  absl::StrCat(pool.used()), pool.free(), FormatPercent(UtilizationPercent(pool.used(), pool.size()))});
  }
  return table.Render();
}

std::string PoolDetail(const v1::Pool& pool) {
  const v1::PoolSpec& spec = pool.spec();
  std::string range(kNone);
  if (!spec.range_start().empty() || !spec.range_end().empty()) {
    range = absl::StrCat(OrNone(spec.range_start()), " - ", OrNone(spec.range_end()));
  }
  return DetailLines({
      {"NAME", spec.name()},
      {"NETWORK", OrNone(spec.network())},
      {"CIDR", spec.cidr()},
      {"RANGE", range},
      {"EXCLUDE", spec.exclude().empty() ? std::string(kNone) : absl::StrJoin(spec.exclude(), ",")},
      {"GATEWAY", OrNone(spec.gateway())},
      {"STRATEGY", StrategyName(spec.strategy())},
      {"PURPOSE", PurposeName(spec.purpose())},
      {"SIZE", pool.size()},
      {"USED", absl::StrCat(pool.used())},
      {"FREE", pool.free()},
      {"UTILIZATION", FormatPercent(UtilizationPercent(pool.used(), pool.size()))},
  });
}

std::string AllocationsTable(const Repeated<v1::Allocation>& allocations) {
  Table table({"ADDRESS", "POOL", "OWNER", "NODE", "LABELS", "EXPIRES"});
  for (const v1::Allocation& allocation : allocations) {
    const std::string labels = LabelsText(allocation.labels());
    table.AddRow({allocation.address(), allocation.pool(), allocation.owner(), OrNone(allocation.node()),
                  OrNone(labels),
                  allocation.expire_time_unix_ms() == 0 ? std::string(kNone)
                                                        : FormatUnixMillis(allocation.expire_time_unix_ms())});
  }
  return table.Render();
}

std::string HistoryTable(const Repeated<v1::HistoryEntry>& entries) {
  Table table({"OWNER", "POOL", "NODE", "FROM", "TO", "REASON"});
  for (const v1::HistoryEntry& entry : entries) {
    const bool held = entry.to_time_unix_ms() == 0;
    table.AddRow({entry.owner(), entry.pool(), OrNone(entry.node()), FormatUnixMillis(entry.from_time_unix_ms()),
                  held ? std::string(kNone) : FormatUnixMillis(entry.to_time_unix_ms()),
                  held ? std::string(kNone) : OrNone(entry.end_reason())});
  }
  return table.Render();
}

void Output::Write(const std::function<nlohmann::json()>& json, const std::function<std::string()>& table) {
  if (format_ == OutputFormat::kJson) {
    out_ << DumpJson(json()) << '\n';
  } else {
    out_ << table();
  }
}

void Output::WriteLine(const std::function<nlohmann::json()>& json, const std::function<std::string()>& text) {
  out_ << (format_ == OutputFormat::kJson ? DumpJsonLine(json()) : text()) << '\n';
  out_.flush();
}

void WritePool(Output& output, const v1::Pool& pool) {
  output.Write([&] { return PoolJson(pool); }, [&] { return PoolDetail(pool); });
}

void WritePools(Output& output, const Repeated<v1::Pool>& pools) {
  output.Write([&] { return JsonArray(pools, &PoolJson); }, [&] { return PoolsTable(pools); });
}

void WriteAllocation(Output& output, const v1::Allocation& allocation) {
  output.Write([&] { return AllocationJson(allocation); },
               [&] {
                 Repeated<v1::Allocation> one;
                 *one.Add() = allocation;
                 return AllocationsTable(one);
               });
}

void WriteAllocations(Output& output, const Repeated<v1::Allocation>& allocations) {
  output.Write([&] { return JsonArray(allocations, &AllocationJson); }, [&] { return AllocationsTable(allocations); });
}

void WriteHistory(Output& output, const Repeated<v1::HistoryEntry>& entries) {
  output.Write([&] { return JsonArray(entries, &HistoryEntryJson); }, [&] { return HistoryTable(entries); });
}

}  // namespace abode::cli
