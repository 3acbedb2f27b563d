#include "kube/config.h"

#include <fstream>
#include <map>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test-support/temp_dir.h"

namespace abode::kube {
namespace {

using ::testing::HasSubstr;
using test_support::TempDir;

void Write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

TEST(KubeconfigTest, TokenUserWithInlineCa) {
  TempDir dir;
  const std::string ca = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  Write(dir.File("config"), "apiVersion: v1\nkind: Config\ncurrent-context: admin\n"
                            "contexts:\n- name: admin\n  context: {cluster: local, user: admin, namespace: kube-system}\n"
                            "- name: other\n  context: {cluster: far, user: admin}\n"
                            "clusters:\n- name: local\n  cluster:\n    server: https://127.0.0.1:6443/\n"
                            "    certificate-authority-data: " + absl::Base64Escape(ca) + "\n"
                            "- name: far\n  cluster: {server: 'https://10.0.0.1:6443'}\n"
                            "users:\n- name: admin\n  user: {token: s3cret}\n");
  auto c = KubeconfigConfig(dir.File("config"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tls.server, "https://127.0.0.1:6443");
  EXPECT_EQ(c->tls.ca_pem, ca);
  EXPECT_EQ(c->token, "s3cret");
  EXPECT_EQ(c->namespace_, "kube-system");
  auto other = KubeconfigConfig(dir.File("config"), "other");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->tls.server, "https://10.0.0.1:6443");
}

TEST(KubeconfigTest, ClientCertificateFilesRelativeToTheConfig) {
  TempDir dir;
  Write(dir.File("ca.crt"), "CA");
  Write(dir.File("admin.crt"), "CERT");
  Write(dir.File("admin.key"), "KEY");
  Write(dir.File("config"), "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
                            "clusters: [{name: k, cluster: {server: 'https://h:1', certificate-authority: ca.crt}}]\n"
                            "users: [{name: u, user: {client-certificate: admin.crt, client-key: "
                            + dir.File("admin.key") + "}}]\n");
  auto c = KubeconfigConfig(dir.File("config"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tls.ca_pem, "CA");
  EXPECT_EQ(c->tls.client_cert_pem, "CERT");
  EXPECT_EQ(c->tls.client_key_pem, "KEY");
}

TEST(KubeconfigTest, ErrorsNameTheFileAndField) {
  TempDir dir;
  auto missing = KubeconfigConfig(dir.File("nope"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("nope"));

  const std::map<std::string, std::string> cases = {
      {"contexts: []\n", "current-context"},
      {"current-context: x\ncontexts: []\n", "contexts: no context named \"x\""},
      {"current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\nclusters: [{name: k, cluster: {server: "
       "'ftp://h'}}]\n",
       "server"},
      {"current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: [{name: k, cluster: "
       "{server: 'https://h', certificate-authority: missing.crt}}]\n",
       "certificate-authority"},
      {"current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: [{name: k, cluster: "
       "{server: 'https://h'}}]\nusers: [{name: u, user: {client-certificate-data: QQ==}}]\n",
       "client-key"},
      {"current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: [{name: k, cluster: "
       "{server: 'https://h'}}]\nusers: [{name: u, user: {exec: {command: aws}}}]\n",
       "exec"},
      {"a: [\n", "line"},
  };
  for (const auto& [text, want] : cases) {
    Write(dir.File("bad"), text);
    auto c = KubeconfigConfig(dir.File("bad"));
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_THAT(c.status().message(), HasSubstr(want)) << text;
    EXPECT_THAT(c.status().message(), HasSubstr(dir.File("bad"))) << text;
  }
}

TEST(InClusterTest, ReadsTheServiceAccountAndTheEnvironment) {
  TempDir dir;
  Write(dir.File("ca.crt"), "CA");
  Write(dir.File("token"), "tok-1\n");
  Write(dir.File("namespace"), "abode-system");
  std::map<std::string, std::string> env = {{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                                            {"KUBERNETES_SERVICE_PORT", "443"}};
  auto getenv = [&](const char* name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  auto c = InClusterConfig(getenv, dir.path());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tls.server, "https://10.96.0.1:443");
  EXPECT_EQ(c->tls.ca_pem, "CA");
  EXPECT_EQ(c->token_file, dir.File("token"));
  EXPECT_EQ(c->namespace_, "abode-system");
  env["KUBERNETES_SERVICE_HOST"] = "fd00::1";
  EXPECT_EQ(InClusterConfig(getenv, dir.path())->tls.server, "https://[fd00::1]:443");

  env.clear();
  auto outside = InClusterConfig(getenv, dir.path());
  EXPECT_EQ(outside.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(outside.status().message(), HasSubstr("KUBERNETES_SERVICE_HOST"));
}

TEST(TokenSourceTest, ARotatedTokenIsReadAfterItsAgeOrARefusal) {
  TempDir dir;
  Write(dir.File("token"), "one\n");
  ClusterConfig c;
  c.token_file = dir.File("token");
  replication::FakeClock clock(1'000'000);
  TokenSource tokens(c, clock, 60'000);
  EXPECT_EQ(*tokens.Token(), "one");
  Write(dir.File("token"), "two\n");
  EXPECT_EQ(*tokens.Token(), "one");  // cached
  clock.Advance(60'000);
  EXPECT_EQ(*tokens.Token(), "two");
  Write(dir.File("token"), "three\n");
  tokens.Invalidate();  // the server said 401
  EXPECT_EQ(*tokens.Token(), "three");

  ClusterConfig fixed;
  fixed.token = "static";
  TokenSource f(fixed, clock);
  EXPECT_EQ(*f.Token(), "static");
}

}  // namespace
}  // namespace abode::kube
