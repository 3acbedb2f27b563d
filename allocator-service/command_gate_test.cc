// The version gate against real gRPC members on port 0: a member whose build does not list a command keeps
// it from being proposed (FAILED_PRECONDITION naming the member), a member never heard from makes it
// UNAVAILABLE, and once every member lists it the command goes through. Commands every build knows pass.
#include "allocator-service/command_gate.h"

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/create_channel.h>
#include <grpcpp/server_builder.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "abode/v1/cluster.grpc.pb.h"
#include "absl/synchronization/mutex.h"
#include "test-support/eventually.h"

namespace abode::allocator {
namespace {

using ::testing::HasSubstr;

// A member's Cluster service that answers Status with the commands it is told to list.
class FakeMember final : public v1::Cluster::CallbackService {
 public:
  explicit FakeMember(std::vector<uint32_t> known) : known_(std::move(known)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~FakeMember() override { server_->Shutdown(); }

  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* ctx, const v1::ClusterStatusRequest* /*req*/,
                                   v1::ClusterStatus* resp) override {
    absl::MutexLock lock(&mu_);
    ++asked_;
    for (uint32_t op : known_) resp->add_known_commands(op);
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  void Upgrade() {
    absl::MutexLock lock(&mu_);
    known_ = KnownCommands();
  }
  int asked() {
    absl::MutexLock lock(&mu_);
    return asked_;
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  absl::Mutex mu_;
  std::vector<uint32_t> known_ ABSL_GUARDED_BY(mu_);
  int asked_ ABSL_GUARDED_BY(mu_) = 0;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

class DirectChannels final : public LeaderChannels {
 public:
  std::shared_ptr<grpc::Channel> Channel(const std::string& address) override {
    return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  }
  replication::Deadline CallDeadline(replication::Deadline caller) const override { return caller; }
};

// Answers every proposal with an empty result, and counts them.
class CountingLog final : public replication::CommandLog {
 public:
  void Propose(v1::Command /*command*/, replication::Deadline /*deadline*/, Done done) override {
    {
      absl::MutexLock lock(&mu_);
      ++proposed_;
    }
    std::move(done)(v1::CommandResult());
  }
  int proposed() {
    absl::MutexLock lock(&mu_);
    return proposed_;
  }

 private:
  absl::Mutex mu_;
  int proposed_ ABSL_GUARDED_BY(mu_) = 0;
};

// The commands of the first release: everything but the gated ones.
std::vector<uint32_t> FirstReleaseCommands() {
  std::vector<uint32_t> out;
  for (uint32_t op : KnownCommands()) {
    if (!IsGatedCommand(static_cast<v1::Command::OpCase>(op))) out.push_back(op);
  }
  return out;
}

class CommandGateTest : public ::testing::Test {
 protected:
  void StartGate(const std::vector<std::string>& addresses) {
    members_.push_back(replication::Member{1, "127.0.0.1:1", "127.0.0.1:2"});  // this replica
    uint64_t id = 2;
    for (const std::string& a : addresses) members_.push_back(replication::Member{id++, "unused:1", a});
    gate_ = std::make_unique<GatedCommandLog>(
        inner_, CommandGateOptions{.view =
                                       [this] {
                                         replication::ClusterView v;
                                         v.id = 1;
                                         v.members = members_;
                                         return v;
                                       },
                                   .channels = &channels_,
                                   .clock = &clock_,
                                   .answer_ttl_ms = 10'000});
  }

  absl::Status Propose(v1::Command command) {
    std::promise<absl::Status> result;
    gate_->Propose(std::move(command), std::chrono::system_clock::now() + std::chrono::seconds(5),
                   [&](replication::CommandOutcome out) { result.set_value(out.status()); });
    return result.get_future().get();
  }
  static v1::Command Many() {
    v1::Command c;
    c.mutable_allocate_many()->set_owner("pod");
    return c;
  }
  static v1::Command One() {
    v1::Command c;
    c.mutable_allocate()->set_owner("pod");
    return c;
  }

  DirectChannels channels_;
  CountingLog inner_;
  replication::FakeClock clock_{1'700'000'000'000};
  std::vector<replication::Member> members_;
  std::unique_ptr<GatedCommandLog> gate_;
};

TEST_F(CommandGateTest, AnOlderMemberRefusesNewCommandsUntilItIsUpgraded) {
  FakeMember current(KnownCommands());
  FakeMember old(FirstReleaseCommands());
  StartGate({current.address(), old.address()});

  absl::Status s = Propose(Many());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("allocate_many"));
  EXPECT_THAT(s.message(), HasSubstr("member 3 (" + old.address() + ")"));
  EXPECT_THAT(std::string(s.message()), ::testing::Not(HasSubstr("member 2")));
  EXPECT_EQ(inner_.proposed(), 0);

  v1::Command del;
  del.mutable_delete_node()->set_node("n1");
  EXPECT_EQ(Propose(del).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Propose(One()).ok()) << "commands every build knows are never held";
  EXPECT_EQ(inner_.proposed(), 1);
  EXPECT_EQ(old.asked(), 1) << "answers are remembered";

  old.Upgrade();
  EXPECT_EQ(Propose(Many()).code(), absl::StatusCode::kFailedPrecondition) << "until the answer is stale";
  clock_.Advance(10'000);
  // The stale answer still decides this call; the member is asked again meanwhile.
  EXPECT_EQ(Propose(Many()).code(), absl::StatusCode::kFailedPrecondition);
  // Once the fresh answer is in, the command goes through.
  EXPECT_TRUE(test_support::Eventually([&] { return Propose(Many()).ok(); }, std::chrono::seconds(10)));
  EXPECT_EQ(old.asked(), 2);
}

TEST_F(CommandGateTest, AMemberNeverHeardFromMakesNewCommandsUnavailable) {
  FakeMember current(KnownCommands());
  std::string gone;
  {
    FakeMember stopped(KnownCommands());
    gone = stopped.address();
  }
  StartGate({current.address(), gone});
  absl::Status s = Propose(Many());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr(gone));
  EXPECT_EQ(inner_.proposed(), 0);
}

TEST_F(CommandGateTest, EveryMemberCurrentLetsTheCommandThrough) {
  FakeMember a(KnownCommands());
  FakeMember b(KnownCommands());
  StartGate({a.address(), b.address()});
  EXPECT_TRUE(Propose(Many()).ok());
  EXPECT_TRUE(Propose(Many()).ok());
  EXPECT_EQ(inner_.proposed(), 2);
  EXPECT_EQ(a.asked(), 1);
  EXPECT_EQ(b.asked(), 1);
}

}  // namespace
}  // namespace abode::allocator
