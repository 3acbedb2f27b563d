// abode-kube as deployed: real abode-kube processes (two replicas electing a leader on a Lease) against a
// real kube-apiserver and etcd and a real allocator. What they do is read from the API server, the allocator
// and their /metrics.
#include <curl/curl.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "integration/allocator_process.h"
#include "kube/kube_apiserver_fixture.h"
#include "kube/leader_election.h"

namespace abode::kube {
namespace {

// Prometheus text: every sample line "name{labels} value" of families named `name`, keyed by its labels.
std::map<std::string, double> Samples(const std::string& text, const std::string& name) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!absl::StartsWith(line, name) || line.size() <= name.size()) continue;
    const char next = line[name.size()];
    if (next != '{' && next != ' ') continue;
    const size_t space = line.rfind(' ');
    double v = 0;
    if (!absl::SimpleAtod(line.substr(space + 1), &v)) continue;
    out[line.substr(name.size(), space - name.size())] = v;
  }
  return out;
}

double Sum(const std::map<std::string, double>& samples) {
  double total = 0;
  for (const auto& [labels, v] : samples) total += v;
  return total;
}

size_t Collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// One abode-kube process.
class KubeProcess {
 public:
  KubeProcess(std::string dir, std::string identity, std::vector<std::string> args)
      : dir_(std::move(dir)), identity_(std::move(identity)), args_(std::move(args)) {}
  ~KubeProcess() {
    Signal(SIGKILL);
    if (::testing::Test::HasFailure()) {  // what it said, for the failure's report
      std::ifstream in(absl::StrCat(dir_, "/", identity_, ".log"));
      std::cerr << "---- abode-kube " << identity_ << " log:\n" << in.rdbuf() << "----\n";
    }
  }

  void Start() {
    const std::string port_file = absl::StrCat(dir_, "/", identity_, ".ports");
    std::vector<std::string> argv = {ABODE_KUBE_BINARY,   "--identity", identity_,  "--listen", "127.0.0.1:0",
                                     "--health-listen", "127.0.0.1:0", "--port-file", port_file};
    argv.insert(argv.end(), args_.begin(), args_.end());
    const std::string log = absl::StrCat(dir_, "/", identity_, ".log");
    pid_ = integration::SpawnProcess(argv, log, log);
    ASSERT_GT(pid_, 0);
    ASSERT_TRUE(test_support::Eventually(
        [&] {
          std::ifstream in(port_file);
          return static_cast<bool>(in >> metrics_port_);
        },
        std::chrono::seconds(30)))
        << "abode-kube " << identity_ << " did not start; see " << log;
  }
  // Sends `sig` and reaps the process; its exit status (or -1 when killed by a signal).
  int Signal(int sig) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::string Metrics() const {
    std::string body;
    CURL* curl = curl_easy_init();
    if (curl == nullptr) return body;
    const std::string url = absl::StrCat("http://127.0.0.1:", metrics_port_, "/metrics");
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
    if (curl_easy_perform(curl) != CURLE_OK) body.clear();
    curl_easy_cleanup(curl);
    return body;
  }
  // abode_kube_allocator_writes_total, by labels.
  std::map<std::string, double> Writes() const { return Samples(Metrics(), "abode_kube_allocator_writes_total"); }
  double Metric(const std::string& name) const { return Sum(Samples(Metrics(), name)); }
  const std::string& identity() const { return identity_; }

 private:
  const std::string dir_;
  const std::string identity_;
  const std::vector<std::string> args_;
  pid_t pid_ = -1;
  int metrics_port_ = 0;
};

class KubeProcessTest : public KubeApiServerTest {
 protected:
  // The kubectl kube-test-env.sh names in DIR/env.
  std::string Kubectl() {
    const std::string env = ReadFile(env_dir_.File("env")).value_or("");
    const size_t at = env.find("KUBECTL=");
    if (at == std::string::npos) return "kubectl";
    return env.substr(at + 8, env.find('\n', at) - at - 8);
  }
  std::vector<std::string> Args(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--kubeconfig", env_dir_.File("kubeconfig"), "--allocator",
                                     absl::StrCat("127.0.0.1:", server_->port()), "--lease-namespace", "default"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  json Lease() {
    auto lease = kube_->Get(ResourcePath("coordination.k8s.io/v1", "leases", "default", "abode-kube"));
    return lease.ok() ? (*lease)["spec"] : json::object();
  }
  std::string Holder() { return Lease().value("holderIdentity", ""); }
  // Names of the external addresses of Service default/`name` and their addresses.
  std::map<std::string, std::string> ExternalsOf(const std::string& name) {
    std::map<std::string, std::string> out;
    for (const auto& [n, address] : Externals()) {
      if (absl::StartsWith(n, ServiceAddressPrefix("default", name))) out[n] = address;
    }
    return out;
  }
  // A LoadBalancer Service abode refuses for want of a pool (no allocator write), and its reconcile seen
  // through the condition it gets. The worker takes due keys in order, so everything queued with it (and
  // sorting before "svc/default/zz-...") has been reconciled too.
  void ServiceBarrier(const std::string& name) {
    LoadBalancer(name, "");
    ASSERT_TRUE(Eventually(
        [&] {
          auto got = kube_->Get(ResourcePath("v1", "services", "default", name));
          return got.ok() && Condition(*got, "abode.dev/AddressAssigned").value("reason", "") == "NoExternalPool";
        },
        30s));
  }
  // The same for the pod informer: an elastic-labelled pod with no pool gets a condition, writes nothing.
  void PodBarrier(const std::string& name) {
    json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata", {{"name", name}, {"namespace", "default"}, {"labels", {{kElasticLabel, "true"}}}}},
                {"spec", {{"nodeName", "n1"}, {"containers", {{{"name", "c"}, {"image", "probe"}}}}}}};
    ASSERT_TRUE(kube_->Create(ResourcePath("v1", "pods", "default"), pod).ok());
    ASSERT_TRUE(Eventually(
        [&] {
          auto got = kube_->Get(ResourcePath("v1", "pods", "default", name));
          return got.ok() && Condition(*got, kElasticReadyCondition).value("reason", "") == "NoExternalPool";
        },
        30s));
  }
};

// Two replicas: one leads (the Lease names it), only it writes; SIGTERM releases the Lease so the other takes
// over at once; kill -9 leaves the Lease to expire, and the other takes over only then. The work goes on
// across both, and no Service ever gets two addresses.
TEST_F(KubeProcessTest, OneOfTwoReplicasLeadsAndWritesTheOtherTakesOverOnSigtermAndOnKill) {
  const std::vector<std::string> lease = {"--lease-duration-seconds", "4", "--renew-deadline-seconds", "3",
                                          "--retry-period-seconds", "0.25"};
  std::map<std::string, std::unique_ptr<KubeProcess>> replicas;
  for (const char* id : {"kube-a", "kube-b"}) {
    replicas[id] = std::make_unique<KubeProcess>(env_dir_.path(), id, Args(lease));
    replicas[id]->Start();
  }
  ASSERT_TRUE(Eventually([&] { return replicas.count(Holder()) == 1; }, 30s)) << Lease().dump();
  KubeProcess* leader = replicas[Holder()].get();
  KubeProcess* follower = replicas[leader->identity() == "kube-a" ? "kube-b" : "kube-a"].get();
  ASSERT_TRUE(Eventually([&] { return leader->Metric("abode_kube_leader") == 1; }, 10s));
  EXPECT_EQ(follower->Metric("abode_kube_leader"), 0);

  LoadBalancer("s1");
  ASSERT_TRUE(Eventually([&] { return !Ingress("s1").empty(); }, 30s));
  EXPECT_THAT(ExternalsOf("s1"), ::testing::ElementsAre(::testing::Pair(::testing::_, Ingress("s1"))));
  const json assigned = Condition(kube_->Get(ResourcePath("v1", "services", "default", "s1")).value(),
                                  "abode.dev/AddressAssigned");
  EXPECT_EQ(assigned.value("status", ""), "True") << assigned.dump();
  EXPECT_EQ(assigned.value("reason", ""), "Assigned");
  EXPECT_GE(leader->Writes().count(R"({controller="services",method="CreateExternalAddress",code="OK"})"), 1u);
  EXPECT_EQ(Sum(follower->Writes()), 0) << "a follower never writes";
  EXPECT_EQ(follower->Metric("abode_kube_reconciles_total"), 0);

  // SIGTERM: the leader stops writing, clears the Lease's holder, then exits; the follower need not wait for
  // the Lease to expire.
  ASSERT_EQ(leader->Signal(SIGTERM), 0);
  EXPECT_NE(Holder(), leader->identity()) << "released on the way out: " << Lease().dump();
  ASSERT_TRUE(Eventually([&] { return Holder() == follower->identity(); }, 10s)) << Lease().dump();
  LoadBalancer("s2");
  ASSERT_TRUE(Eventually([&] { return !Ingress("s2").empty(); }, 30s));
  EXPECT_GT(Sum(follower->Writes()), 0);

  // A new replica joins as follower; kill -9 of the leader: no release, so the Lease must expire first.
  KubeProcess late(env_dir_.path(), "kube-c", Args(lease));
  late.Start();
  ASSERT_TRUE(Eventually([&] { return late.Metric("abode_kube_informer_lists_total") >= 3; }, 30s));
  EXPECT_EQ(late.Metric("abode_kube_leader"), 0);
  follower->Signal(SIGKILL);
  const json dead = Lease();
  ASSERT_EQ(dead.value("holderIdentity", ""), follower->identity());
  ASSERT_TRUE(Eventually([&] { return Holder() == "kube-c"; }, 4s + 10s)) << Lease().dump();
  const json taken = Lease();
  EXPECT_GE(ParseMicroTime(taken.value("acquireTime", "")),
            ParseMicroTime(dead.value("renewTime", "")) + dead.value("leaseDurationSeconds", 0) * 1000)
      << "taken over only once the dead leader's Lease had expired: " << taken.dump();
  EXPECT_EQ(taken.value("leaseTransitions", 0), dead.value("leaseTransitions", 0) + 1);

  LoadBalancer("s3");
  ASSERT_TRUE(Eventually([&] { return !Ingress("s3").empty(); }, 30s));
  EXPECT_GT(Sum(late.Writes()), 0);
  // Each Service has exactly one address, the one its status shows; no address twice.
  std::set<std::string> addresses;
  for (const char* svc : {"s1", "s2", "s3"}) {
    const auto mine = ExternalsOf(svc);
    ASSERT_EQ(mine.size(), 1u) << svc;
    EXPECT_EQ(mine.begin()->second, Ingress(svc)) << svc;
    addresses.insert(mine.begin()->second);
  }
  EXPECT_EQ(addresses.size(), 3u);
  EXPECT_EQ(Externals().size(), 3u);
}

// The API server restarts while abode-kube watches: its informers reconnect (resuming or relisting), and as
// nothing changed it makes no write: its write counters stay, and the allocator applies no command. Then one
// real change makes exactly one write and one command.
TEST_F(KubeProcessTest, AnApiServerRestartCausesNoWriteAndARealChangeExactlyOne) {
  PodWithAllocation("default", "p", "one", "cid-p/eth0");
  LoadBalancer("web");
  KubeProcess kube(env_dir_.path(), "kube-a", Args());
  kube.Start();
  ASSERT_TRUE(Eventually([&] { return Selected("app=one") == std::set<std::string>{"cid-p/eth0"}; }, 30s));
  ASSERT_TRUE(Eventually([&] { return !Ingress("web").empty(); }, 30s));
  ServiceBarrier("zz-before");
  const auto writes = kube.Writes();
  const auto applied = AppliedAndRevision();
  ASSERT_GT(Sum(writes), 0);
  const double errors = kube.Metric("abode_kube_informer_errors_total");
  const double lists = kube.Metric("abode_kube_informer_lists_total");

  const int rc = std::system((Script() + " restart-apiserver " + env_dir_.path() + " > /dev/null 2>&1").c_str());
  ASSERT_EQ(WEXITSTATUS(rc), 0);
  // Every informer's watch broke; new objects reach the cache and are reconciled, so the informers are back.
  ASSERT_TRUE(Eventually([&] { return kube.Metric("abode_kube_informer_errors_total") >= errors + 3; }, 30s));
  ServiceBarrier("zz-after");
  PodBarrier("zz-after");
  EXPECT_EQ(kube.Writes(), writes) << "no write for objects that did not change";
  EXPECT_EQ(AppliedAndRevision(), applied) << "no command reached the allocator";
  RecordProperty("relists", std::to_string(kube.Metric("abode_kube_informer_lists_total") - lists));

  // A real change: one UpdateLabels, one command, one revision.
  ASSERT_TRUE(kube_->MergePatch(ResourcePath("v1", "pods", "default", "p"), {{"metadata", {{"labels", {{"app", "two"}}}}}})
                  .ok());
  ASSERT_TRUE(Eventually([&] { return Selected("app=two") == std::set<std::string>{"cid-p/eth0"}; }, 30s));
  ServiceBarrier("zz-changed");
  auto expected = writes;
  expected[R"({controller="pods",method="UpdateLabels",code="OK"})"] += 1;
  EXPECT_EQ(kube.Writes(), expected);
  EXPECT_EQ(AppliedAndRevision(), std::make_pair(applied.first + 1, applied.second + 1));
}

// abode-kube with exactly the rights deploy/base/kube.yaml grants its ServiceAccount (a token of that account):
// every write it makes is allowed, the Lease in its own namespace included.
TEST_F(KubeProcessTest, TheRightsDeployKubeYamlGrantsAreEnoughForEveryWrite) {
  Namespace("abode-system");
  const std::string kubectl =
      absl::StrCat("KUBECONFIG=", env_dir_.File("kubeconfig"), " ", Kubectl(), " apply -n abode-system -f ",
                   ABODE_SOURCE_DIR, "/deploy/base/kube.yaml > ", env_dir_.File("apply.log"), " 2>&1");
  ASSERT_EQ(WEXITSTATUS(std::system(kubectl.c_str())), 0) << ReadFile(env_dir_.File("apply.log")).value_or("");
  auto token = kube_->Create(ResourcePath("v1", "serviceaccounts", "abode-system", "abode-kube", "token"),
                             {{"apiVersion", "authentication.k8s.io/v1"},
                              {"kind", "TokenRequest"},
                              {"spec", {{"expirationSeconds", 3600}}}});
  ASSERT_TRUE(token.ok()) << token.status();
  std::string kubeconfig = ReadFile(env_dir_.File("kubeconfig")).value();
  const size_t at = kubeconfig.find(config_.token);
  ASSERT_NE(at, std::string::npos);
  kubeconfig.replace(at, config_.token.size(), (*token)["status"]["token"].get<std::string>());
  std::ofstream(env_dir_.File("abode-kube.kubeconfig")) << kubeconfig;

  PodWithAllocation("default", "db-0", "db", "cid-db/eth0", {{kElasticLabel, "true"}});
  LoadBalancer("web", "ext", {"198.51.100.7"});
  KubeProcess kube(env_dir_.path(), "kube-rbac",
                   {"--kubeconfig", env_dir_.File("abode-kube.kubeconfig"), "--allocator",
                    absl::StrCat("127.0.0.1:", server_->port()), "--lease-namespace", "abode-system"});
  kube.Start();
  // The Lease (get, create, update), Service status (patch), the pod's annotations (patch) and condition
  // (pods/status patch).
  ASSERT_TRUE(Eventually([&] { return kube.Metric("abode_kube_leader") == 1; }, 30s));
  ASSERT_TRUE(Eventually([&] { return !Ingress("web").empty(); }, 30s));
  ASSERT_TRUE(Eventually(
      [&] {
        auto pod = kube_->Get(ResourcePath("v1", "pods", "default", "db-0"));
        return pod.ok() && !Annotation(*pod, kElasticAddressAnnotation).empty() &&
               Condition(*pod, kElasticReadyCondition).value("status", "") == "True";
      },
      30s));
  // Events: created, then patched when the refusal repeats (the Service changed, the refusal did not).
  auto refusal = [&] {
    auto events = kube_->List(ResourcePath("v1", "events", "default"));
    if (!events.ok()) return json::object();
    for (const auto& e : events->items) {
      if (e.value("reason", "") == "ExternalIPRefused") return e;
    }
    return json::object();
  };
  ServiceBarrier("zz-rbac");  // the reconciles the Service's own status write caused are done
  const int count = refusal().value("count", 0);
  ASSERT_GE(count, 1);
  ASSERT_TRUE(kube_->MergePatch(ResourcePath("v1", "services", "default", "web"),
                                {{"metadata", {{"annotations", {{"touched", "1"}}}}}})
                  .ok());
  ASSERT_TRUE(Eventually([&] { return refusal().value("count", 0) == count + 1; }, 30s)) << refusal().dump();
  EXPECT_EQ(refusal()["involvedObject"].value("kind", ""), "Service");
  EXPECT_EQ(kube.Metric("abode_kube_reconcile_failures_total"), 0) << "nothing was forbidden";
}

}  // namespace
}  // namespace abode::kube
