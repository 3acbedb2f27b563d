#include "cni/installer.h"

#include <dirent.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <optional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "test-support/temp_dir.h"

namespace abode::cni {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void Spit(const std::string& path, const std::string& text, mode_t mode = 0644) {
  std::ofstream(path, std::ios::binary) << text;
  ::chmod(path.c_str(), mode);
}

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  while (dirent* e = d != nullptr ? ::readdir(d) : nullptr) {
    if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") names.push_back(e->d_name);
  }
  if (d != nullptr) ::closedir(d);
  return names;
}

class InstallerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::mkdir(bin_dir().c_str(), 0755);
    ::mkdir(conf_dir().c_str(), 0755);
    Spit(plugin(), std::string("\x7f" "ELF plugin bytes\0with a NUL", 27), 0700);
    options_.plugin = plugin();
    options_.cni_bin_dir = bin_dir();
    options_.cni_conf_dir = conf_dir();
  }
  std::string plugin() const { return dir_.File("abode"); }
  std::string bin_dir() const { return dir_.File("bin"); }
  std::string conf_dir() const { return dir_.File("net.d"); }

  test_support::TempDir dir_{"cni-install"};
  InstallOptions options_;
};

TEST_F(InstallerTest, CopiesThePluginWithMode0755AndLeavesNoTemporaryFile) {
  Result<InstallPlan> plan = PlanInstall(options_);
  ASSERT_TRUE(plan.ok()) << plan.error().msg;
  EXPECT_EQ(plan->plugin_destination, bin_dir() + "/abode");
  EXPECT_TRUE(plan->conflist_destination.empty());
  EXPECT_THAT(Entries(bin_dir()), ::testing::IsEmpty());  // planning writes nothing

  ASSERT_EQ(Install(options_, *plan), std::nullopt);
  EXPECT_EQ(Slurp(bin_dir() + "/abode"), Slurp(plugin()));
  struct stat st {};
  ASSERT_EQ(::stat((bin_dir() + "/abode").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_THAT(Entries(bin_dir()), UnorderedElementsAre("abode"));
  EXPECT_THAT(Entries(conf_dir()), ::testing::IsEmpty());
}

TEST_F(InstallerTest, ReplacesAnOlderPluginByRenameSoAnOpenCopyKeepsItsContent) {
  Spit(bin_dir() + "/abode", "old version", 0755);
  std::ifstream running(bin_dir() + "/abode");  // a plugin the runtime is executing right now
  struct stat before {};
  ASSERT_EQ(::stat((bin_dir() + "/abode").c_str(), &before), 0);

  Result<InstallPlan> plan = PlanInstall(options_);
  ASSERT_TRUE(plan.ok()) << plan.error().msg;
  ASSERT_EQ(Install(options_, *plan), std::nullopt);

  struct stat after {};
  ASSERT_EQ(::stat((bin_dir() + "/abode").c_str(), &after), 0);
  EXPECT_NE(before.st_ino, after.st_ino);  // a new file took the name; the old one was not rewritten in place
  std::string old_content;
  std::getline(running, old_content);
  EXPECT_EQ(old_content, "old version");
  EXPECT_EQ(Slurp(bin_dir() + "/abode"), Slurp(plugin()));
  EXPECT_THAT(Entries(bin_dir()), UnorderedElementsAre("abode"));
}

TEST_F(InstallerTest, WritesAConflistMadeFromFlagsThatThePluginAccepts) {
  options_.network = "pods";
  options_.bridge = "br-pods";
  options_.range = "10.244.0.0/16";
  Result<InstallPlan> plan = PlanInstall(options_);
  ASSERT_TRUE(plan.ok()) << plan.error().msg;
  ASSERT_EQ(Install(options_, *plan), std::nullopt);
  EXPECT_THAT(Entries(conf_dir()), UnorderedElementsAre("10-abode.conflist"));
  const nlohmann::json list = nlohmann::json::parse(Slurp(conf_dir() + "/10-abode.conflist"));
  EXPECT_EQ(list["name"], "pods");
  EXPECT_EQ(list["cniVersion"], "1.0.0");
  ASSERT_EQ(list["plugins"].size(), 1u);
  EXPECT_EQ(list["plugins"][0]["type"], "bridge");
  EXPECT_EQ(list["plugins"][0]["bridge"], "br-pods");
  EXPECT_EQ(list["plugins"][0]["ipam"], (nlohmann::json{{"type", "abode"}, {"range", "10.244.0.0/16"}}));
  struct stat st {};
  ASSERT_EQ(::stat((conf_dir() + "/10-abode.conflist").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
}

TEST_F(InstallerTest, InstallsAConflistFileAfterCheckingItsAbodeSection) {
  const std::string good = R"({"cniVersion": "1.0.0", "name": "net", "plugins": [
      {"type": "macvlan", "master": "eth0", "ipam": {"type": "abode", "range": "192.168.5.0/24"}},
      {"type": "portmap", "capabilities": {"portMappings": true}}]})";
  Spit(dir_.File("in.conflist"), good);
  options_.conflist_file = dir_.File("in.conflist");
  options_.conflist_name = "05-net.conflist";
  Result<InstallPlan> plan = PlanInstall(options_);
  ASSERT_TRUE(plan.ok()) << plan.error().msg;
  ASSERT_EQ(Install(options_, *plan), std::nullopt);
  EXPECT_EQ(Slurp(conf_dir() + "/05-net.conflist"), good);
}

// The node's own network configuration under the same name is left alone unless the operator says so; an
// abode configuration (an earlier install) is replaced.
TEST_F(InstallerTest, ReplacesAnAbodeConflistButNotAForeignOneUnlessTold) {
  options_.network = "pods";
  options_.range = "10.244.0.0/16";
  const std::string dest = conf_dir() + "/10-abode.conflist";
  const std::string foreign = R"({"cniVersion": "1.0.0", "name": "cluster", "plugins": [
      {"type": "calico", "ipam": {"type": "calico-ipam"}}]})";
  Spit(dest, foreign);
  Result<InstallPlan> plan = PlanInstall(options_);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.error().code, kInvalidConfig);
  EXPECT_THAT(plan.error().msg, HasSubstr("--conflist-name"));
  EXPECT_THAT(plan.error().msg, HasSubstr("not an abode configuration"));
  EXPECT_EQ(Slurp(dest), foreign);
  Spit(dest, "not json at all");
  EXPECT_FALSE(PlanInstall(options_).ok());

  options_.overwrite_conflist = true;
  plan = PlanInstall(options_);
  ASSERT_TRUE(plan.ok()) << plan.error().msg;
  ASSERT_EQ(Install(options_, *plan), std::nullopt);
  EXPECT_EQ(nlohmann::json::parse(Slurp(dest))["name"], "pods");

  // Now abode's: a second install with other values replaces it without being told.
  options_.overwrite_conflist = false;
  options_.range = "10.245.0.0/16";
  plan = PlanInstall(options_);
  ASSERT_TRUE(plan.ok()) << plan.error().msg;
  ASSERT_EQ(Install(options_, *plan), std::nullopt);
  EXPECT_EQ(nlohmann::json::parse(Slurp(dest))["plugins"][0]["ipam"]["range"], "10.245.0.0/16");
  EXPECT_THAT(Entries(conf_dir()), UnorderedElementsAre("10-abode.conflist"));
}

// Each bad configuration is refused before anything is written, with a message naming the flag.
TEST_F(InstallerTest, RefusesBadConfigurationsNamingTheFlag) {
  struct Case {
    std::string name;
    std::function<void(InstallOptions&)> change;
    std::string message;
    int code;
  };
  const auto conflist = [&](const std::string& text) {
    return [this, text](InstallOptions& o) {
      Spit(dir_.File("c.conflist"), text);
      o.conflist_file = dir_.File("c.conflist");
    };
  };
  const std::vector<Case> cases = {
      {"missing plugin", [&](InstallOptions& o) { o.plugin = dir_.File("nope"); }, "--plugin: cannot read", kIoFailure},
      {"plugin not executable", [&](InstallOptions& o) { o.plugin = dir_.File("net.d"); }, "--plugin", kInvalidConfig},
      {"relative bin dir", [](InstallOptions& o) { o.cni_bin_dir = "opt/cni/bin"; }, "--cni-bin-dir", kInvalidConfig},
      {"range without network", [](InstallOptions& o) { o.range = "10.0.0.0/8"; }, "--network: required",
       kInvalidConfig},
      {"network without range", [](InstallOptions& o) { o.network = "n"; }, "--range: required", kInvalidConfig},
      {"bad range", [](InstallOptions& o) { o.network = "n"; o.range = "10.0.0.300/8"; },
       "--network/--bridge/--range: plugins[0]: ipam.range", kInvalidConfig},
      {"bad name", [](InstallOptions& o) { o.network = "n"; o.range = "10.0.0.0/8"; o.conflist_name = "x.conf"; },
       "--conflist-name", kInvalidConfig},
      {"file and flags", [&](InstallOptions& o) { conflist("{}")(o); o.network = "n"; }, "not both", kInvalidConfig},
      {"missing file", [&](InstallOptions& o) { o.conflist_file = dir_.File("none"); }, "--conflist-file: cannot open",
       kIoFailure},
      {"not JSON", conflist("{"), "--conflist-file", kInvalidConfig},
      {"old version", conflist(R"({"cniVersion": "0.1.0", "name": "n", "plugins": [{"type": "x"}]})"), "cniVersion",
       kInvalidConfig},
      {"no abode", conflist(R"({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge"}]})"),
       "exactly one plugin", kInvalidConfig},
      {"bad abode section",
       conflist(R"({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge",
                   "ipam": {"type": "abode", "range": "10.0.0.0/8", "timeout_ms": "soon"}}]})"),
       "plugins[0]: ipam.timeout_ms", kInvalidConfig},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    InstallOptions o = options_;
    c.change(o);
    Result<InstallPlan> plan = PlanInstall(o);
    ASSERT_FALSE(plan.ok());
    EXPECT_THAT(plan.error().msg, HasSubstr(c.message));
    EXPECT_EQ(plan.error().code, c.code);
  }
  EXPECT_THAT(Entries(bin_dir()), ::testing::IsEmpty());
  EXPECT_THAT(Entries(conf_dir()), ::testing::IsEmpty());
}

TEST_F(InstallerTest, AFailedWriteLeavesTheDestinationAndNoTemporaryFile) {
  Spit(bin_dir() + "/abode", "old version", 0755);
  ::mkdir(dir_.File("ro").c_str(), 0555);
  // Root writes into a 0555 folder anyway; a missing folder fails for everyone.
  std::optional<CniError> e = WriteFileAtomically(dir_.File("missing/abode"), "new", 0755);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code, kIoFailure);
  EXPECT_THAT(e->msg, HasSubstr("cannot create"));
  // A destination that is a non-empty folder cannot be renamed over.
  ::mkdir((bin_dir() + "/taken").c_str(), 0755);
  Spit(bin_dir() + "/taken/x", "");
  e = WriteFileAtomically(bin_dir() + "/taken", "new", 0755);
  ASSERT_TRUE(e.has_value());
  EXPECT_THAT(e->msg, HasSubstr("cannot rename"));
  EXPECT_THAT(Entries(bin_dir()), UnorderedElementsAre("abode", "taken"));
  EXPECT_EQ(Slurp(bin_dir() + "/abode"), "old version");
}

// The binary: --check-config plans and writes nothing; without it, it installs; bad flags exit 2.
TEST_F(InstallerTest, BinaryChecksConfigWithoutWritingThenInstalls) {
  const std::string base = std::string(ABODE_CNI_INSTALL_BIN) + " --plugin " + plugin() + " --cni-bin-dir " +
                           bin_dir() + " --cni-conf-dir " + conf_dir() + " --network pods";
  const auto run = [](const std::string& command) {
    const int status = std::system((command + " >/dev/null 2>&1").c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  EXPECT_EQ(run(base + " --range 10.244.0.0/16 --check-config"), 0);
  EXPECT_THAT(Entries(bin_dir()), ::testing::IsEmpty());
  EXPECT_THAT(Entries(conf_dir()), ::testing::IsEmpty());
  EXPECT_EQ(run(base + " --range 10.244.0.0/33 --check-config"), 2);
  EXPECT_EQ(run(base + " --range 10.244.0.0/16"), 0);
  EXPECT_THAT(Entries(bin_dir()), UnorderedElementsAre("abode"));
  EXPECT_THAT(Entries(conf_dir()), UnorderedElementsAre("10-abode.conflist"));
}

}  // namespace
}  // namespace abode::cni
