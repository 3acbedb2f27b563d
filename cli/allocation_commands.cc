// allocate | release | renew | label | get | list | history.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "cli/api_methods.h"
#include "cli/commands.h"
#include "cli/time_text.h"

namespace abode::cli {
namespace {

// The API's largest page of allocations.
constexpr int kMaxPageSize = 5000;

CLI::Option* AddTtlOption(CLI::App* command, std::int64_t& ttl_seconds, const std::string& description) {
  return command->add_option("--ttl", ttl_seconds, description)->check(CLI::NonNegativeNumber);
}

void AllocateCommand(CLI::App& app, CommandAction& selected) {
  struct Flags {
    v1::AllocateRequest request;
    std::vector<std::string> labels;
    std::int64_t ttl_seconds = 0;
  };
  auto flags = std::make_shared<Flags>();
  v1::AllocateRequest& request = flags->request;
  CLI::App* command = app.add_subcommand("allocate", "Allocate an address (idempotent per owner key)");
  command->add_option("--pool", *request.mutable_pool(), "Pool to allocate from")->required();
  command->add_option("--owner", *request.mutable_owner(), "Owner key, e.g. k8s/<pod-uid>/eth0")->required();
  command->add_option("--address", *request.mutable_address(), "This exact address, or an error");
  command->add_option("--node", *request.mutable_node(), "Node the address is for");
  command->add_option("--label", flags->labels, "Label key=value (repeatable)")
      ->allow_extra_args(false)
      ->check(KeyValueValidator());
  AddTtlOption(command, flags->ttl_seconds, "Seconds until the allocation expires unless renewed (0: never)");
  OnSelected(command, selected, [flags](Session& session) -> absl::Status {
    v1::AllocateRequest request = flags->request;
    request.set_ttl_seconds(flags->ttl_seconds);
    for (const std::string& label : flags->labels) {
      const auto equals = label.find('=');
      (*request.mutable_labels())[label.substr(0, equals)] = label.substr(equals + 1);
    }
    return CallAndWrite(session, kAllocate, request, &WriteAllocation);
  });
}

void ReleaseCommand(CLI::App& app, CommandAction& selected) {
  auto request = std::make_shared<v1::ReleaseRequest>();
  CLI::App* command = app.add_subcommand("release", "Release what an owner holds, or one address");
  CLI::Option* owner = command->add_option("--owner", *request->mutable_owner(), "Release this owner's addresses");
  CLI::Option* address = command->add_option("--address", *request->mutable_address(), "Release this address");
  command->add_option("--pool", *request->mutable_pool(), "Only in this pool");
  command->add_option("--network", *request->mutable_network(), "Network the address lives in")->needs(address);
  OnSelected(
      command, selected,
      [request](Session& session) -> absl::Status {
        return CallAndWrite(session, kRelease, *request, [](Output& output, const v1::ReleaseResponse& released) {
          WriteAllocations(output, released.released());
        });
      },
      ExactlyOneOf(owner, address));
}

void RenewCommand(CLI::App& app, CommandAction& selected) {
  struct Flags {
    v1::RenewRequest request;
    std::int64_t ttl_seconds = 0;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand("renew", "Push back the expiry of an owner's allocations");
  command->add_option("--owner", *flags->request.mutable_owner(), "Owner key")->required();
  command->add_option("--pool", *flags->request.mutable_pool(), "Only in this pool");
  AddTtlOption(command, flags->ttl_seconds, "New TTL in seconds (0: keep each allocation's TTL)");
  OnSelected(command, selected, [flags](Session& session) -> absl::Status {
    v1::RenewRequest request = flags->request;
    request.set_ttl_seconds(flags->ttl_seconds);
    return CallAndWrite(session, kRenew, request, [](Output& output, const v1::RenewResponse& renewed) {
      WriteAllocations(output, renewed.allocations());
    });
  });
}

// Labels are replaced as a whole by UpdateLabels: the keys to keep are the owner's current ones (read first)
// but those removed or set. A key another writer adds between the read and the write is not kept.
void LabelCommand(CLI::App& app, CommandAction& selected) {
  struct Flags {
    v1::GetAllocationRequest get;
    LabelEdit edit;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand("label", "Set or remove labels of an owner's allocations");
  command->add_option("--owner", *flags->get.mutable_owner(), "Owner key")->required();
  command->add_option("--pool", *flags->get.mutable_pool(), "Only its allocation in this pool");
  std::function<void()> check = AddLabelEdit(command, flags->edit);
  OnSelected(
      command, selected,
      [flags](Session& session) -> absl::Status {
        absl::StatusOr<v1::GetAllocationResponse> held = Call(session.transport, kGetAllocation, flags->get);
        if (!held.ok()) return held.status();
        v1::UpdateLabelsRequest request;
        request.set_owner(flags->get.owner());
        request.set_pool(flags->get.pool());
        std::set<std::string> keep;
        for (const v1::Allocation& a : held->allocations()) {
          for (const auto& [key, value] : a.labels()) keep.insert(key);
        }
        for (const auto& [key, value] : flags->edit.Apply({})) {
          (*request.mutable_labels())[key] = value;
          keep.erase(key);
        }
        for (const std::string& key : flags->edit.remove) keep.erase(key);
        for (const std::string& key : keep) request.add_keep_keys(key);
        return CallAndWrite(session, kUpdateLabels, request, [](Output& output, const v1::UpdateLabelsResponse& done) {
          WriteAllocations(output, done.allocations());
        });
      },
      check);
}

void GetCommand(CLI::App& app, CommandAction& selected) {
  auto request = std::make_shared<v1::GetAllocationRequest>();
  CLI::App* command = app.add_subcommand("get", "Show the allocations of an owner, or of an address");
  CLI::Option* owner = command->add_option("--owner", *request->mutable_owner(), "Owner key");
  CLI::Option* address = command->add_option("--address", *request->mutable_address(), "Address");
  CLI::Option* pool = command->add_option("--pool", *request->mutable_pool(), "Only in this pool");
  command->add_option("--network", *request->mutable_network(), "Network the address lives in")
      ->needs(address)
      ->excludes(pool);
  OnSelected(
      command, selected,
      [request](Session& session) -> absl::Status {
        return CallAndWrite(session, kGetAllocation, *request,
                            [](Output& output, const v1::GetAllocationResponse& found) {
                              WriteAllocations(output, found.allocations());
                            });
      },
      ExactlyOneOf(owner, address));
}

void ListCommand(CLI::App& app, CommandAction& selected) {
  struct Flags {
    v1::ListAllocationsRequest request;
    int limit = 0;
  };
  auto flags = std::make_shared<Flags>();
  v1::ListAllocationsRequest& request = flags->request;
  CLI::App* command = app.add_subcommand("list", "List allocations, following pages to the end");
  command->add_option("--pool", *request.mutable_pool(), "Only in this pool");
  command->add_option("--node", *request.mutable_node(), "Only for this node");
  command->add_option("--owner", *request.mutable_owner(), "Only of this owner");
  command->add_option("--selector", *request.mutable_label_selector(), "Labels that must match: k=v,k2=v2");
  command->add_option("--limit", flags->limit, "Stop after this many allocations")->check(CLI::PositiveNumber);
  OnSelected(command, selected, [flags](Session& session) -> absl::Status {
    v1::ListAllocationsRequest page_request = flags->request;
    Repeated<v1::Allocation> allocations;
    const bool limited = flags->limit > 0;
    while (true) {
      const int wanted = limited ? std::min(flags->limit - allocations.size(), kMaxPageSize) : kMaxPageSize;
      page_request.set_page_size(wanted);
      absl::StatusOr<v1::ListAllocationsResponse> page = Call(session.transport, kListAllocations, page_request);
      if (!page.ok()) return page.status();
      for (v1::Allocation& allocation : *page->mutable_allocations()) {
        if (limited && allocations.size() >= flags->limit) break;
        *allocations.Add() = std::move(allocation);
      }
      if (page->next_page_token().empty() || (limited && allocations.size() >= flags->limit)) break;
      if (page->next_page_token() == page_request.page_token()) {
        return absl::InternalError("server returned the same page token twice");
      }
      page_request.set_page_token(page->next_page_token());
    }
    WriteAllocations(session.output, allocations);
    return absl::OkStatus();
  });
}

void HistoryCommand(CLI::App& app, CommandAction& selected) {
  struct Flags {
    v1::GetHistoryRequest request;
    std::string at;
  };
  auto flags = std::make_shared<Flags>();
  v1::GetHistoryRequest& request = flags->request;
  CLI::App* command = app.add_subcommand("history", "Who held an address, from when to when (newest first)");
  command->add_option("--address", *request.mutable_address(), "Address")->required();
  command->add_option("--network", *request.mutable_network(), "Network the address lives in");
  command->add_option("--pool", *request.mutable_pool(), "Only in this pool");
  command->add_option("--at", flags->at, "Only who held it at this time: RFC3339 or unix milliseconds")
      ->check(TimeValidator());
  OnSelected(command, selected, [flags](Session& session) -> absl::Status {
    v1::GetHistoryRequest request = flags->request;
    if (!flags->at.empty()) {
      absl::StatusOr<std::int64_t> at = ParseTimeArgument(flags->at);
      if (!at.ok()) return at.status();
      request.set_at_time_unix_ms(*at);
    }
    return CallAndWrite(session, kGetHistory, request, [](Output& output, const v1::GetHistoryResponse& history) {
      WriteHistory(output, history.entries());
    });
  });
}

}  // namespace

void AddAllocationCommands(CLI::App& app, CommandAction& selected) {
  AllocateCommand(app, selected);
  ReleaseCommand(app, selected);
  RenewCommand(app, selected);
  LabelCommand(app, selected);
  GetCommand(app, selected);
  ListCommand(app, selected);
  HistoryCommand(app, selected);
}

}  // namespace abode::cli
