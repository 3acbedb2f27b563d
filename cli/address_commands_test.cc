// external | elastic | magic commands through RunAbodectl against a fake transport.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cli/abodectl_fixture.h"
#include "cli/api_methods.h"

namespace abode::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

using AddressCommandsTest = AbodectlTest;

TEST_F(AddressCommandsTest, ExternalCreateFillsEveryField) {
  v1::ExternalAddress created;
  created.mutable_spec()->set_name("web");
  created.set_address("203.0.113.5");
  fake_.Respond(created);
  const Result result = Run({"external", "create", "web", "--pool", "public", "--address", "203.0.113.5",
                             "--node-selector", "zone=a,edge=true"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  EXPECT_EQ(fake_.calls()[0].method, kCreateExternalAddress.path);
  const v1::ExternalAddressSpec& spec = fake_.request<v1::CreateExternalAddressRequest>().address();
  EXPECT_EQ(spec.name(), "web");
  EXPECT_EQ(spec.pool(), "public");
  EXPECT_EQ(spec.address(), "203.0.113.5");
  EXPECT_EQ(spec.node_selector(), "zone=a,edge=true");
  EXPECT_THAT(result.out, StartsWith("NAME"));
  EXPECT_THAT(result.out, HasSubstr("203.0.113.5"));
}

TEST_F(AddressCommandsTest, ExternalGetListDelete) {
  fake_.Respond(v1::ExternalAddress());
  ASSERT_EQ(Run({"external", "get", "web"}).exit_code, kExitOk);
  EXPECT_EQ(fake_.calls()[0].method, kGetExternalAddress.path);
  EXPECT_EQ(fake_.request<v1::GetExternalAddressRequest>(0).name(), "web");

  fake_.Respond(v1::ListExternalAddressesResponse());
  const Result listed = Run({"-o", "json", "external", "list", "--node", "n1"});
  ASSERT_EQ(listed.exit_code, kExitOk) << listed.err;
  EXPECT_EQ(fake_.calls()[1].method, kListExternalAddresses.path);
  EXPECT_EQ(fake_.request<v1::ListExternalAddressesRequest>(1).node(), "n1");
  EXPECT_EQ(listed.out, "[]\n");

  v1::DeleteAddressResponse deleted;
  deleted.set_revision(9);
  fake_.Respond(deleted);
  Result result = Run({"external", "delete", "web"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  EXPECT_EQ(fake_.calls()[2].method, kDeleteExternalAddress.path);
  EXPECT_EQ(fake_.request<v1::DeleteExternalAddressRequest>(2).name(), "web");
  EXPECT_EQ(result.out, "external address \"web\" deleted\n");
  fake_.Respond(deleted);
  result = Run({"-o", "json", "external", "delete", "web"});
  EXPECT_EQ(nlohmann::json::parse(result.out), (nlohmann::json{{"name", "web"}, {"revision", 9}}));
}

TEST_F(AddressCommandsTest, ElasticCreateGetListDelete) {
  fake_.Respond(v1::ElasticAddress());
  ASSERT_EQ(Run({"elastic", "create", "eip-1", "--pool", "public", "--address", "203.0.113.9"}).exit_code, kExitOk);
  EXPECT_EQ(fake_.calls()[0].method, kCreateElasticAddress.path);
  const v1::ElasticAddressSpec& spec = fake_.request<v1::CreateElasticAddressRequest>(0).address();
  EXPECT_EQ(spec.name(), "eip-1");
  EXPECT_EQ(spec.pool(), "public");
  EXPECT_EQ(spec.address(), "203.0.113.9");

  fake_.Respond(v1::ElasticAddress());
  ASSERT_EQ(Run({"elastic", "get", "eip-1"}).exit_code, kExitOk);
  EXPECT_EQ(fake_.calls()[1].method, kGetElasticAddress.path);
  EXPECT_EQ(fake_.request<v1::GetElasticAddressRequest>(1).name(), "eip-1");

  fake_.Respond(v1::ListElasticAddressesResponse());
  ASSERT_EQ(Run({"elastic", "list"}).exit_code, kExitOk);
  EXPECT_EQ(fake_.calls()[2].method, kListElasticAddresses.path);

  fake_.Respond(v1::DeleteAddressResponse());
  const Result deleted = Run({"elastic", "delete", "eip-1"});
  EXPECT_EQ(fake_.calls()[3].method, kDeleteElasticAddress.path);
  EXPECT_EQ(fake_.request<v1::DeleteElasticAddressRequest>(3).name(), "eip-1");
  EXPECT_EQ(deleted.out, "elastic address \"eip-1\" deleted\n");
}

TEST_F(AddressCommandsTest, ElasticAssociateByOwnerOrSelector) {
  fake_.Respond(v1::ElasticAddress());
  ASSERT_EQ(Run({"elastic", "associate", "eip-1", "--owner", "k8s/uid/eth0"}).exit_code, kExitOk);
  EXPECT_EQ(fake_.calls()[0].method, kAssociateElasticAddress.path);
  const auto& by_owner = fake_.request<v1::AssociateElasticAddressRequest>(0);
  EXPECT_EQ(by_owner.name(), "eip-1");
  EXPECT_EQ(by_owner.association().owner(), "k8s/uid/eth0");
  EXPECT_EQ(by_owner.association().label_selector(), "");

  fake_.Respond(v1::ElasticAddress());
  ASSERT_EQ(Run({"elastic", "associate", "eip-1", "--selector", "app=db"}).exit_code, kExitOk);
  const auto& by_selector = fake_.request<v1::AssociateElasticAddressRequest>(1);
  EXPECT_EQ(by_selector.association().owner(), "");
  EXPECT_EQ(by_selector.association().label_selector(), "app=db");

  fake_.Respond(v1::ElasticAddress());
  ASSERT_EQ(Run({"elastic", "disassociate", "eip-1"}).exit_code, kExitOk);
  EXPECT_EQ(fake_.calls()[2].method, kDisassociateElasticAddress.path);
  EXPECT_EQ(fake_.request<v1::DisassociateElasticAddressRequest>(2).name(), "eip-1");
}

TEST_F(AddressCommandsTest, MagicCreateFillsEveryField) {
  fake_.Respond(v1::MagicAddress());
  const Result result =
      Run({"magic", "create", "dd-agent", "--address", "169.254.210.210", "--port", "8125/udp", "--port", "8126",
           "--selector", "app=dd-agent", "--target-port", "9000", "--policy", "fallback"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  EXPECT_EQ(fake_.calls()[0].method, kCreateMagicAddress.path);
  const v1::MagicAddressSpec& spec = fake_.request<v1::CreateMagicAddressRequest>().address();
  EXPECT_EQ(spec.name(), "dd-agent");
  EXPECT_EQ(spec.address(), "169.254.210.210");
  EXPECT_EQ(spec.label_selector(), "app=dd-agent");
  EXPECT_EQ(spec.policy(), v1::MAGIC_POLICY_FALLBACK);
  ASSERT_EQ(spec.ports_size(), 2);
  EXPECT_EQ(spec.ports(0).protocol(), v1::PROTOCOL_UDP);
  EXPECT_EQ(spec.ports(0).port(), 8125u);
  EXPECT_EQ(spec.ports(0).target_port(), 9000u);
  EXPECT_EQ(spec.ports(1).protocol(), v1::PROTOCOL_TCP);
  EXPECT_EQ(spec.ports(1).port(), 8126u);
}

TEST_F(AddressCommandsTest, MagicCreateDefaultsLeaveFieldsUnset) {
  fake_.Respond(v1::MagicAddress());
  ASSERT_EQ(Run({"magic", "create", "m", "--address", "fe80::1", "--port", "53/sctp", "--selector", "a=b"}).exit_code,
            kExitOk);
  const v1::MagicAddressSpec& spec = fake_.request<v1::CreateMagicAddressRequest>().address();
  EXPECT_EQ(spec.policy(), v1::MAGIC_POLICY_UNSPECIFIED);
  EXPECT_EQ(spec.ports(0).protocol(), v1::PROTOCOL_SCTP);
  EXPECT_EQ(spec.ports(0).target_port(), 0u);
}

TEST_F(AddressCommandsTest, MagicGetListDelete) {
  fake_.Respond(v1::MagicAddress());
  ASSERT_EQ(Run({"magic", "get", "dd"}).exit_code, kExitOk);
  EXPECT_EQ(fake_.calls()[0].method, kGetMagicAddress.path);
  EXPECT_EQ(fake_.request<v1::GetMagicAddressRequest>(0).name(), "dd");
  fake_.Respond(v1::ListMagicAddressesResponse());
  ASSERT_EQ(Run({"magic", "list"}).exit_code, kExitOk);
  EXPECT_EQ(fake_.calls()[1].method, kListMagicAddresses.path);
  fake_.Respond(v1::DeleteAddressResponse());
  ASSERT_EQ(Run({"magic", "delete", "dd"}).exit_code, kExitOk);
  EXPECT_EQ(fake_.calls()[2].method, kDeleteMagicAddress.path);
  EXPECT_EQ(fake_.request<v1::DeleteMagicAddressRequest>(2).name(), "dd");
}

TEST_F(AddressCommandsTest, ServerRefusalExitsOneWithTheField) {
  fake_.Fail(absl::InvalidArgumentError("address: 10.0.0.1 is not link-local (169.254.0.0/16 or fe80::/10)"));
  const Result result = Run({"magic", "create", "m", "--address", "10.0.0.1", "--port", "80", "--selector", "a=b"});
  EXPECT_EQ(result.exit_code, kExitRpcError);
  EXPECT_THAT(result.err, StartsWith("error: INVALID_ARGUMENT: address: "));
}

TEST_F(AddressCommandsTest, BadUsageExitsTwo) {
  ExpectUsageError({"external"}, "subcommand");
  ExpectUsageError({"external", "create", "web"}, "--pool");
  ExpectUsageError({"external", "get"}, "NAME");
  ExpectUsageError({"elastic", "associate", "eip-1"}, "exactly one of --owner or --selector");
  ExpectUsageError({"elastic", "associate", "eip-1", "--owner", "o", "--selector", "a=b"}, "--selector");
  ExpectUsageError({"magic", "create", "m", "--address", "169.254.1.1", "--selector", "a=b"}, "--port");
  ExpectUsageError({"magic", "create", "m", "--address", "169.254.1.1", "--port", "80/icmp", "--selector", "a=b"},
                   "80/icmp");
  ExpectUsageError({"magic", "create", "m", "--address", "169.254.1.1", "--port", "70000", "--selector", "a=b"},
                   "70000");
  ExpectUsageError(
      {"magic", "create", "m", "--address", "169.254.1.1", "--port", "80", "--selector", "a=b", "--policy", "random"},
      "random");
  ExpectUsageError({"magic", "create", "m", "--address", "169.254.1.1", "--port", "80"}, "--selector");
}

}  // namespace
}  // namespace abode::cli
