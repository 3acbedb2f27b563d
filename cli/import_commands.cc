// import whereabouts FILE... [--network-config FILE]... [--dry-run]
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/api_methods.h"
#include "cli/commands.h"
#include "cli/whereabouts_import.h"
#include "cni/ip_text.h"

namespace abode::cli {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot be read"));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string Canonical(const std::string& cidr) {
  auto p = cni::Prefix::Parse(cidr);
  return p ? cni::Prefix{p->Network(), p->length}.ToString() : cidr;
}

// What the import does or would do, step by step.
struct Plan {
  struct Step {
    std::string kind;  // "pool" or "allocation"
    std::string name;  // pool name or address
    std::string pool;
    std::string owner;
    std::string action;  // "create", "unchanged", "conflict", or the error of a failed create
    std::string detail;
  };
  std::vector<Step> steps;
  std::vector<std::string> conflicts;
  std::vector<std::string> notes;
  bool dry_run = false;
};

void WritePlan(Output& output, const Plan& plan) {
  output.Write(
      [&]() -> nlohmann::json {
        nlohmann::json steps = nlohmann::json::array();
        for (const Plan::Step& s : plan.steps) {
          steps.push_back({{"kind", s.kind}, {"name", s.name}, {"pool", s.pool}, {"owner", s.owner},
                           {"action", s.action}, {"detail", s.detail}});
        }
        return {{"dry_run", plan.dry_run}, {"steps", steps}, {"conflicts", plan.conflicts}, {"notes", plan.notes}};
      },
      [&] {
        Table table({"KIND", "NAME", "POOL", "OWNER", "ACTION"});
        std::map<std::string, int> counts;
        for (const Plan::Step& s : plan.steps) {
          table.AddRow({s.kind, s.name, OrNone(s.pool), OrNone(s.owner), s.action});
          ++counts[s.kind + " " + s.action];
        }
        std::string text = table.Render();
        for (const std::string& n : plan.notes) absl::StrAppend(&text, "note: ", n, "\n");
        for (const std::string& c : plan.conflicts) absl::StrAppend(&text, "conflict: ", c, "\n");
        std::vector<std::string> summary;
        for (const auto& [what, n] : counts) summary.push_back(absl::StrCat(n, " ", what));
        absl::StrAppend(&text, plan.dry_run ? "dry run, nothing changed: " : "", absl::StrJoin(summary, ", "),
                        summary.empty() ? "nothing to import" : "", ", ", plan.conflicts.size(), " conflicts\n");
        return text;
      });
}

absl::Status Import(Session& session, const std::vector<std::string>& files, const std::vector<std::string>& configs,
                    bool dry_run) {
  WhereaboutsImport import;
  for (const std::string& file : files) {
    auto text = ReadFile(file);
    if (!text.ok()) return text.status();
    if (absl::Status s = ReadWhereaboutsExport(*text, file, import); !s.ok()) return s;
  }
  for (const std::string& file : configs) {
    auto text = ReadFile(file);
    if (!text.ok()) return text.status();
    if (absl::Status s = ApplyNetworkConfig(*text, file, import); !s.ok()) return s;
  }
  ResolveReservations(import);
  Plan plan;
  plan.dry_run = dry_run;
  plan.conflicts = import.conflicts;
  plan.notes = import.notes;
  for (const ImportedPool& pool : import.pools) {
    v1::GetPoolRequest get;
    get.set_name(pool.spec.name());
    absl::StatusOr<v1::Pool> existing = Call(session.transport, kGetPool, get);
    bool exists = existing.ok();
    if (!existing.ok() && existing.status().code() != absl::StatusCode::kNotFound) return existing.status();
    if (exists && (Canonical(existing->spec().cidr()) != pool.spec.cidr() ||
                   existing->spec().network() != pool.spec.network())) {
      plan.conflicts.push_back(absl::StrCat(pool.source, ": pool \"", pool.spec.name(), "\" exists as ",
                                            existing->spec().cidr(), " in network \"", existing->spec().network(),
                                            "\", the export has ", pool.spec.cidr(), " in \"", pool.spec.network(),
                                            "\"; its ", pool.allocations.size(), " allocations are not imported"));
      plan.steps.push_back({"pool", pool.spec.name(), "", "", "conflict", ""});
      continue;
    }
    Plan::Step pool_step{"pool", pool.spec.name(), "", "", exists ? "unchanged" : "create", pool.spec.cidr()};
    if (!exists && !dry_run) {
      v1::CreatePoolRequest create;
      *create.mutable_pool() = pool.spec;
      absl::StatusOr<v1::Pool> created = Call(session.transport, kCreatePool, create);
      if (!created.ok()) {
        plan.conflicts.push_back(absl::StrCat(pool.source, ": creating pool \"", pool.spec.name(), "\": ",
                                              created.status().message()));
        pool_step.action = "conflict";
        plan.steps.push_back(pool_step);
        continue;
      }
      exists = true;
    }
    plan.steps.push_back(pool_step);
    for (const ImportedAllocation& a : pool.allocations) {
      Plan::Step step{"allocation", a.address, pool.spec.name(), a.owner, "create", ""};
      if (exists) {
        v1::GetAllocationRequest held_req;
        held_req.set_address(a.address);
        held_req.set_network(pool.spec.network());
        absl::StatusOr<v1::GetAllocationResponse> held = Call(session.transport, kGetAllocation, held_req);
        if (!held.ok() && held.status().code() != absl::StatusCode::kNotFound) return held.status();
        if (held.ok() && held->allocations_size() > 0) {
          const v1::Allocation& holder = held->allocations(0);
          if (holder.owner() == a.owner) {
            step.action = "unchanged";
          } else {
            step.action = "conflict";
            plan.conflicts.push_back(absl::StrCat(a.source, ": ", a.address, " is held by owner \"", holder.owner(),
                                                  "\" in pool \"", holder.pool(), "\", the export has \"", a.owner, "\""));
          }
        }
      }
      if (step.action == "create" && !dry_run) {
        v1::AllocateRequest allocate;
        allocate.set_pool(pool.spec.name());
        allocate.set_owner(a.owner);
        allocate.set_address(a.address);
        for (const auto& [k, v] : a.labels) (*allocate.mutable_labels())[k] = v;
        absl::StatusOr<v1::Allocation> made = Call(session.transport, kAllocate, allocate);
        if (!made.ok()) {
          if (made.status().code() == absl::StatusCode::kUnavailable ||
              made.status().code() == absl::StatusCode::kDeadlineExceeded) {
            return made.status();
          }
          step.action = "conflict";
          plan.conflicts.push_back(absl::StrCat(a.source, ": ", a.address, ": ", made.status().message()));
        }
      }
      plan.steps.push_back(step);
    }
  }
  WritePlan(session.output, plan);
  if (!plan.conflicts.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(plan.conflicts.size(), " conflicts (listed above) were left as they are"));
  }
  return absl::OkStatus();
}

void ImportWhereaboutsCommand(CLI::App& import, CommandAction& selected) {
  struct Flags {
    std::vector<std::string> files;
    std::vector<std::string> configs;
    bool dry_run = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = import.add_subcommand(
      "whereabouts",
      "Import whereabouts IPPool and OverlappingRangeIPReservation objects (kubectl get ... -o json); "
      "importing again changes nothing, and what is held otherwise is listed as a conflict, never overwritten");
  command->add_option("FILE", flags->files, "kubectl -o json output of ippools / overlappingrangeipreservations")
      ->required()
      ->check(CLI::ExistingFile);
  command->add_option("--network-config", flags->configs,
                      "a whereabouts network configuration (or NetworkAttachmentDefinition JSON) whose ranges' "
                      "range_start, range_end, exclude and gateway the imported pools take (repeatable)")
      ->check(CLI::ExistingFile);
  command->add_flag("--dry-run", flags->dry_run, "Print the plan; change nothing");
  OnSelected(command, selected,
             [flags](Session& session) { return Import(session, flags->files, flags->configs, flags->dry_run); });
}

}  // namespace

void AddImportCommands(CLI::App& app, CommandAction& selected) {
  CLI::App* import = app.add_subcommand("import", "Import address state from other IPAM systems");
  import->require_subcommand(1);
  ImportWhereaboutsCommand(*import, selected);
}

}  // namespace abode::cli
