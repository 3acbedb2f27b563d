// nodes [list | get NAME | label NODE | delete NODE] and watch --node NAME.
#include <signal.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "cli/address_output.h"
#include "cli/api_methods.h"
#include "cli/commands.h"

namespace abode::cli {
namespace {

// Set by SIGINT/SIGTERM while a watch runs. A signal handler can only reach static storage; this flag is
// written nowhere else.
std::atomic<bool> interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free);

extern "C" void OnInterrupt(int /*signal*/) { interrupted.store(true); }

// While alive, SIGINT and SIGTERM end the watch instead of the process; afterwards the previous handlers are
// back, so a second Ctrl-C during the shutdown still kills.
class InterruptScope {
 public:
  InterruptScope() {
    interrupted.store(false);
    struct sigaction action {};
    action.sa_handler = &OnInterrupt;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &action, &previous_int_);
    sigaction(SIGTERM, &action, &previous_term_);
  }
  ~InterruptScope() {
    sigaction(SIGINT, &previous_int_, nullptr);
    sigaction(SIGTERM, &previous_term_, nullptr);
  }
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;

  bool requested() const { return interrupted.load(); }

 private:
  struct sigaction previous_int_ {};
  struct sigaction previous_term_ {};
};

CommandAction ListNodesAction(std::shared_ptr<v1::ListNodesRequest> request) {
  return [request](Session& session) -> absl::Status {
    return CallAndWrite(session, kListNodes, *request, [](Output& output, const v1::ListNodesResponse& listed) {
      WriteNodes(output, listed.nodes());
    });
  };
}

void NodesCommand(CLI::App& app, CommandAction& selected) {
  auto list_request = std::make_shared<v1::ListNodesRequest>();
  auto get_request = std::make_shared<v1::GetNodeRequest>();
  CLI::App* nodes = app.add_subcommand("nodes", "Nodes with readiness, last heartbeat and what each carries");
  nodes->add_option("--selector", *list_request->mutable_label_selector(), "Only nodes with these labels: k=v,k2=v2");
  CLI::App* list = nodes->add_subcommand("list", "List nodes (the same as `nodes` alone)");
  list->add_option("--selector", *list_request->mutable_label_selector(), "Only nodes with these labels: k=v,k2=v2");
  OnSelected(list, selected, ListNodesAction(list_request));
  CLI::App* get = nodes->add_subcommand("get", "Show one node, its assignments and their reported status");
  get->add_option("NAME", *get_request->mutable_name(), "Node name")->required();
  OnSelected(get, selected, [get_request](Session& session) -> absl::Status {
    return CallAndWrite(session, kGetNode, *get_request, &WriteNode);
  });
  // SetNodeLabels replaces the set labels as a whole: the node's current ones are read first and edited.
  struct LabelFlags {
    v1::GetNodeRequest get;
    LabelEdit edit;
  };
  auto label_flags = std::make_shared<LabelFlags>();
  CLI::App* label = nodes->add_subcommand(
      "label", "Set or remove labels set on a node (node selectors match them over what abode-node reports)");
  label->add_option("NODE", *label_flags->get.mutable_name(), "Node name")->required();
  std::function<void()> label_check = AddLabelEdit(label, label_flags->edit);
  OnSelected(
      label, selected,
      [label_flags](Session& session) -> absl::Status {
        absl::StatusOr<v1::Node> node = Call(session.transport, kGetNode, label_flags->get);
        if (!node.ok()) return node.status();
        v1::SetNodeLabelsRequest request;
        request.set_name(label_flags->get.name());
        const std::map<std::string, std::string> current(node->set_labels().begin(), node->set_labels().end());
        for (const auto& [key, value] : label_flags->edit.Apply(current)) (*request.mutable_labels())[key] = value;
        return CallAndWrite(session, kSetNodeLabels, request, &WriteNode);
      },
      label_check);
  auto delete_request = std::make_shared<v1::DeleteNodeRequest>();
  CLI::App* del = nodes->add_subcommand(
      "delete", "Decommission a node: release the allocations made through it, move its external addresses, "
                "forget it");
  del->add_option("NODE", *delete_request->mutable_node(), "Node name")->required();
  del->add_option("--reason", *delete_request->mutable_reason(),
                  "Why; recorded in the history of every allocation released");
  del->add_flag_function(
      "--force", [delete_request](std::int64_t) { delete_request->set_force(true); },
      "Delete it even while its abode-node is connected");
  OnSelected(del, selected, [delete_request](Session& session) -> absl::Status {
    return CallAndWrite(session, kDeleteNode, *delete_request,
                        [&](Output& output, const v1::DeleteNodeResponse& deleted) {
                          WriteNodeDeleted(output, delete_request->node(), deleted);
                        });
  });
  // `nodes` alone lists. Its callback runs after a subcommand's, so it leaves their choice alone.
  nodes->final_callback([nodes, &selected, list_request] {
    if (!nodes->get_subcommands([](const CLI::App* sub) { return sub->parsed(); }).empty()) return;
    selected = ListNodesAction(list_request);
  });
}

void WatchCommand(CLI::App& app, CommandAction& selected) {
  struct Flags {
    v1::WatchStart start;
    std::int64_t count = 0;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand(
      "watch", "Print a node's assignment stream, one line a message, observing only (no registration)");
  command->add_option("--node", *flags->start.mutable_node(), "Node whose assignments to watch")->required();
  command->add_option_function<std::uint64_t>(
      "--resume-revision", [flags](std::uint64_t revision) { flags->start.set_resume_revision(revision); },
      "Start after this revision (deltas only, when the server still has them)");
  command->add_option("--count", flags->count, "Stop after this many messages (then --timeout bounds the watch)")
      ->check(CLI::PositiveNumber);
  OnSelected(command, selected, [flags](Session& session) -> absl::Status {
    InterruptScope interrupt;
    StreamOptions options;
    options.first_message_timeout = session.timeout;
    if (flags->count > 0) options.deadline = session.timeout;
    options.stop_requested = [&interrupt] { return interrupt.requested(); };
    std::unique_ptr<Stream> stream = OpenStream(session.transport, kWatchAssignments, std::move(options));
    v1::WatchAssignmentsRequest start;
    *start.mutable_start() = flags->start;
    // The stream stays half-open: the server ends a watch whose client closes its side.
    if (stream->Write(start)) {
      v1::WatchAssignmentsResponse message;
      std::int64_t seen = 0;
      while ((flags->count == 0 || seen < flags->count) && stream->Read(message)) {
        WriteWatchMessage(session.output, message);
        ++seen;
      }
      if (flags->count > 0 && seen == flags->count) {
        stream->Finish().IgnoreError();  // CANCELLED: the stream is abandoned, as asked
        return absl::OkStatus();
      }
    }
    const absl::Status status = stream->Finish();
    if (interrupt.requested()) return absl::OkStatus();
    if (status.ok()) return absl::UnavailableError("the server ended the watch");
    return status;
  });
}

}  // namespace

void AddNodeCommands(CLI::App& app, CommandAction& selected) {
  NodesCommand(app, selected);
  WatchCommand(app, selected);
}

}  // namespace abode::cli
