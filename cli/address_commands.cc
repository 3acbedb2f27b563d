// external | elastic | magic: create | get | list | delete, and elastic associate | disassociate.
#include <charconv>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/address_output.h"
#include "cli/api_methods.h"
#include "cli/commands.h"

namespace abode::cli {
namespace {

// `group get NAME`: get and delete requests of every address kind carry just the name.
template <typename Request, typename Response, typename Write>
void NamedCommand(CLI::App& group, CommandAction& selected, const std::string& name, const std::string& description,
                  UnaryMethod<Request, Response> method, Write write) {
  auto request = std::make_shared<Request>();
  CLI::App* command = group.add_subcommand(name, description);
  command->add_option("NAME", *request->mutable_name(), "Address name")->required();
  OnSelected(command, selected, [request, method, write](Session& session) -> absl::Status {
    return CallAndWrite(session, method, *request,
                        [&](Output& output, const Response& response) { write(output, *request, response); });
  });
}

template <typename Request>
void DeleteCommand(CLI::App& group, CommandAction& selected, const std::string& kind,
                   UnaryMethod<Request, v1::DeleteAddressResponse> method) {
  NamedCommand(group, selected, "delete", "Delete the " + kind + " address NAME", method,
               [kind](Output& output, const Request& request, const v1::DeleteAddressResponse& deleted) {
                 WriteAddressDeleted(output, kind, request.name(), deleted);
               });
}

template <typename Request, typename Resource>
void GetCommand(CLI::App& group, CommandAction& selected, UnaryMethod<Request, Resource> method,
                void (*write)(Output&, const Resource&)) {
  NamedCommand(group, selected, "get", "Show one address", method,
               [write](Output& output, const Request&, const Resource& found) { write(output, found); });
}

// NAME, --pool and --address: what external and elastic specs share.
template <typename Spec>
void AddPoolAddressOptions(CLI::App* command, Spec& spec) {
  command->add_option("NAME", *spec.mutable_name(), "Address name")->required();
  command->add_option("--pool", *spec.mutable_pool(), "External pool to take it from")->required();
  command->add_option("--address", *spec.mutable_address(), "This address of the pool (default: allocated)");
}

// ------------------------------------------------------------------------------------------------ external

void ExternalCreateCommand(CLI::App& external, CommandAction& selected) {
  auto request = std::make_shared<v1::CreateExternalAddressRequest>();
  v1::ExternalAddressSpec& spec = *request->mutable_address();
  CLI::App* command = external.add_subcommand("create", "Claim an external address, served by one ready node");
  AddPoolAddressOptions(command, spec);
  command->add_option("--node-selector", *spec.mutable_node_selector(), "Nodes that may serve it: k=v,k2=v2");
  OnSelected(command, selected, [request](Session& session) -> absl::Status {
    return CallAndWrite(session, kCreateExternalAddress, *request, &WriteExternalAddress);
  });
}

void ExternalListCommand(CLI::App& external, CommandAction& selected) {
  auto request = std::make_shared<v1::ListExternalAddressesRequest>();
  CLI::App* command = external.add_subcommand("list", "List external addresses and the nodes serving them");
  command->add_option("--node", *request->mutable_node(), "Only those served by this node");
  OnSelected(command, selected, [request](Session& session) -> absl::Status {
    return CallAndWrite(session, kListExternalAddresses, *request,
                        [](Output& output, const v1::ListExternalAddressesResponse& listed) {
                          WriteExternalAddresses(output, listed.addresses());
                        });
  });
}

// ------------------------------------------------------------------------------------------------- elastic

void ElasticCreateCommand(CLI::App& elastic, CommandAction& selected) {
  auto request = std::make_shared<v1::CreateElasticAddressRequest>();
  v1::ElasticAddressSpec& spec = *request->mutable_address();
  CLI::App* command = elastic.add_subcommand("create", "Allocate an elastic address from an external pool");
  AddPoolAddressOptions(command, spec);
  OnSelected(command, selected, [request](Session& session) -> absl::Status {
    return CallAndWrite(session, kCreateElasticAddress, *request, &WriteElasticAddress);
  });
}

void ElasticListCommand(CLI::App& elastic, CommandAction& selected) {
  CLI::App* command = elastic.add_subcommand("list", "List elastic addresses and the workloads they map to");
  OnSelected(command, selected, [](Session& session) -> absl::Status {
    return CallAndWrite(session, kListElasticAddresses, v1::ListElasticAddressesRequest(),
                        [](Output& output, const v1::ListElasticAddressesResponse& listed) {
                          WriteElasticAddresses(output, listed.addresses());
                        });
  });
}

void ElasticAssociateCommand(CLI::App& elastic, CommandAction& selected) {
  auto request = std::make_shared<v1::AssociateElasticAddressRequest>();
  v1::ElasticAssociation& association = *request->mutable_association();
  CLI::App* command =
      elastic.add_subcommand("associate", "Map an elastic address 1:1 to a workload (re-associates atomically)");
  command->add_option("NAME", *request->mutable_name(), "Address name")->required();
  CLI::Option* owner = command->add_option("--owner", *association.mutable_owner(), "Owner key of the workload");
  CLI::Option* selector = command->add_option("--selector", *association.mutable_label_selector(),
                                              "Labels matching exactly one allocation: k=v,k2=v2");
  OnSelected(
      command, selected,
      [request](Session& session) -> absl::Status {
        return CallAndWrite(session, kAssociateElasticAddress, *request, &WriteElasticAddress);
      },
      ExactlyOneOf(owner, selector));
}

void ElasticDisassociateCommand(CLI::App& elastic, CommandAction& selected) {
  NamedCommand(elastic, selected, "disassociate", "Remove an elastic address's mapping to its workload",
               kDisassociateElasticAddress,
               [](Output& output, const v1::DisassociateElasticAddressRequest&, const v1::ElasticAddress& address) {
                 WriteElasticAddress(output, address);
               });
}

// --------------------------------------------------------------------------------------------------- magic

// "PORT[/PROTOCOL]" with PROTOCOL tcp (default), udp or sctp; the target port is set apart.
std::optional<v1::PortMapping> ParsePortMapping(std::string_view text) {
  v1::PortMapping mapping;
  mapping.set_protocol(v1::PROTOCOL_TCP);
  const auto slash = text.find('/');
  if (slash != std::string_view::npos) {
    const std::string_view protocol = text.substr(slash + 1);
    if (protocol == "tcp") {
      mapping.set_protocol(v1::PROTOCOL_TCP);
    } else if (protocol == "udp") {
      mapping.set_protocol(v1::PROTOCOL_UDP);
    } else if (protocol == "sctp") {
      mapping.set_protocol(v1::PROTOCOL_SCTP);
    } else {
      return std::nullopt;
    }
    text = text.substr(0, slash);
  }
  std::uint32_t port = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (error != std::errc() || end != text.data() + text.size() || port == 0 || port > 65535) return std::nullopt;
  mapping.set_port(port);
  return mapping;
}

void MagicCreateCommand(CLI::App& magic, CommandAction& selected) {
  struct Flags {
    v1::MagicAddressSpec spec;
    std::vector<std::string> ports;
    std::uint32_t target_port = 0;
    v1::MagicPolicy policy = v1::MAGIC_POLICY_UNSPECIFIED;
  };
  auto flags = std::make_shared<Flags>();
  v1::MagicAddressSpec& spec = flags->spec;
  CLI::App* command =
      magic.add_subcommand("create", "A link-local address every ready node maps to a matching local workload");
  command->add_option("NAME", *spec.mutable_name(), "Address name")->required();
  command->add_option("--address", *spec.mutable_address(), "In 169.254.0.0/16 or fe80::/10")->required();
  command->add_option("--port", flags->ports, "PORT[/tcp|udp|sctp] to map (repeatable; default tcp)")
      ->required()
      ->allow_extra_args(false)
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            return ParsePortMapping(text) ? std::string() : "\"" + text + "\" is not PORT[/tcp|udp|sctp]";
          },
          "PORT/PROTO"));
  command->add_option("--target-port", flags->target_port, "Port on the workload (default: the same port)")
      ->check(CLI::Range(1, 65535));
  command->add_option("--selector", *spec.mutable_label_selector(), "Allocations to map to: k=v,k2=v2")->required();
  AddChoice(command, "--policy", flags->policy,
            {{"drop", v1::MAGIC_POLICY_DROP}, {"fallback", v1::MAGIC_POLICY_FALLBACK}},
            "No local match: drop traffic (default) or use a workload on another node");
  OnSelected(command, selected, [flags](Session& session) -> absl::Status {
    v1::CreateMagicAddressRequest request;
    *request.mutable_address() = flags->spec;
    for (const std::string& text : flags->ports) {
      v1::PortMapping& port = *request.mutable_address()->add_ports() = *ParsePortMapping(text);
      port.set_target_port(flags->target_port);
    }
    request.mutable_address()->set_policy(flags->policy);
    return CallAndWrite(session, kCreateMagicAddress, request, &WriteMagicAddress);
  });
}

void MagicListCommand(CLI::App& magic, CommandAction& selected) {
  CLI::App* command = magic.add_subcommand("list", "List magic addresses");
  OnSelected(command, selected, [](Session& session) -> absl::Status {
    return CallAndWrite(session, kListMagicAddresses, v1::ListMagicAddressesRequest(),
                        [](Output& output, const v1::ListMagicAddressesResponse& listed) {
                          WriteMagicAddresses(output, listed.addresses());
                        });
  });
}

}  // namespace

void AddAddressCommands(CLI::App& app, CommandAction& selected) {
  CLI::App* external = app.add_subcommand("external", "External addresses, each served by one ready node");
  external->require_subcommand(1);
  ExternalCreateCommand(*external, selected);
  GetCommand(*external, selected, kGetExternalAddress, &WriteExternalAddress);
  ExternalListCommand(*external, selected);
  DeleteCommand(*external, selected, "external", kDeleteExternalAddress);

  CLI::App* elastic = app.add_subcommand("elastic", "Elastic addresses, mapped 1:1 to a workload");
  elastic->require_subcommand(1);
  ElasticCreateCommand(*elastic, selected);
  GetCommand(*elastic, selected, kGetElasticAddress, &WriteElasticAddress);
  ElasticListCommand(*elastic, selected);
  DeleteCommand(*elastic, selected, "elastic", kDeleteElasticAddress);
  ElasticAssociateCommand(*elastic, selected);
  ElasticDisassociateCommand(*elastic, selected);

  CLI::App* magic = app.add_subcommand("magic", "Magic link-local addresses, mapped on every node");
  magic->require_subcommand(1);
  MagicCreateCommand(*magic, selected);
  GetCommand(*magic, selected, kGetMagicAddress, &WriteMagicAddress);
  MagicListCommand(*magic, selected);
  DeleteCommand(*magic, selected, "magic", kDeleteMagicAddress);
}

}  // namespace abode::cli
