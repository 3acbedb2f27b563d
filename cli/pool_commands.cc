// pool create | get | delete | list.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/api_methods.h"
#include "cli/commands.h"

namespace abode::cli {
namespace {

void PoolCreateCommand(CLI::App& pool, CommandAction& selected) {
  struct Flags {
    v1::PoolSpec spec;
    std::vector<std::string> exclude;
    v1::AllocationStrategy strategy = v1::ALLOCATION_STRATEGY_UNSPECIFIED;
    v1::PoolPurpose purpose = v1::POOL_PURPOSE_UNSPECIFIED;
  };
  auto flags = std::make_shared<Flags>();
  v1::PoolSpec& spec = flags->spec;
  CLI::App* command = pool.add_subcommand("create", "Create an address pool");
  command->add_option("NAME", *spec.mutable_name(), "Pool name")->required();
  command->add_option("--cidr", *spec.mutable_cidr(), "The pool's CIDR, e.g. 10.1.0.0/16 or fd00:1::/64")->required();
  command->add_option("--range-start", *spec.mutable_range_start(), "First address handed out");
  command->add_option("--range-end", *spec.mutable_range_end(), "Last address handed out");
  command->add_option("--exclude", flags->exclude, "CIDR never handed out (repeatable)")->allow_extra_args(false);
  command->add_option("--gateway", *spec.mutable_gateway(), "Gateway address, never handed out");
  command->add_option("--network", *spec.mutable_network(), "Network the pool belongs to");
  AddChoice(command, "--strategy", flags->strategy,
            {{"lowest", v1::ALLOCATION_STRATEGY_LOWEST}, {"sequential", v1::ALLOCATION_STRATEGY_SEQUENTIAL}},
            "Which free address comes next");
  AddChoice(command, "--purpose", flags->purpose,
            {{"workload", v1::POOL_PURPOSE_WORKLOAD}, {"external", v1::POOL_PURPOSE_EXTERNAL}},
            "What the addresses are for");
  OnSelected(command, selected, [flags](Session& session) -> absl::Status {
    v1::CreatePoolRequest request;
    *request.mutable_pool() = flags->spec;
    request.mutable_pool()->mutable_exclude()->Assign(flags->exclude.begin(), flags->exclude.end());
    request.mutable_pool()->set_strategy(flags->strategy);
    request.mutable_pool()->set_purpose(flags->purpose);
    return CallAndWrite(session, kCreatePool, request, &WritePool);
  });
}

void PoolGetCommand(CLI::App& pool, CommandAction& selected) {
  auto request = std::make_shared<v1::GetPoolRequest>();
  CLI::App* command = pool.add_subcommand("get", "Show one pool and how full it is");
  command->add_option("NAME", *request->mutable_name(), "Pool name")->required();
  OnSelected(command, selected, [request](Session& session) -> absl::Status {
    return CallAndWrite(session, kGetPool, *request, &WritePool);
  });
}

void PoolDeleteCommand(CLI::App& pool, CommandAction& selected) {
  auto request = std::make_shared<v1::DeletePoolRequest>();
  CLI::App* command = pool.add_subcommand("delete", "Delete a pool");
  command->add_option("NAME", *request->mutable_name(), "Pool name")->required();
  command->add_flag(
      "--force", [request](std::int64_t count) { request->set_force(count > 0); },
      "Release every allocation in the pool first");
  OnSelected(command, selected, [request](Session& session) -> absl::Status {
    return CallAndWrite(session, kDeletePool, *request, [&](Output& output, const v1::DeletePoolResponse& deleted) {
      output.Write(
          [&]() -> nlohmann::json {
            return {{"name", request->name()}, {"released", deleted.released()}, {"revision", deleted.revision()}};
          },
          [&] {
            return absl::StrCat("pool \"", request->name(), "\" deleted, ", deleted.released(),
                                " allocations released\n");
          });
    });
  });
}

void PoolListCommand(CLI::App& pool, CommandAction& selected) {
  auto request = std::make_shared<v1::ListPoolsRequest>();
  CLI::App* command = pool.add_subcommand("list", "List pools with their size and use");
  command->add_option("--network", *request->mutable_network(), "Only pools of this network");
  OnSelected(command, selected, [request](Session& session) -> absl::Status {
    return CallAndWrite(session, kListPools, *request, [](Output& output, const v1::ListPoolsResponse& listed) {
      WritePools(output, listed.pools());
    });
  });
}

}  // namespace

void AddPoolCommands(CLI::App& app, CommandAction& selected) {
  CLI::App* pool = app.add_subcommand("pool", "Manage address pools");
  pool->require_subcommand(1);
  PoolCreateCommand(*pool, selected);
  PoolGetCommand(*pool, selected);
  PoolDeleteCommand(*pool, selected);
  PoolListCommand(*pool, selected);
}

}  // namespace abode::cli
