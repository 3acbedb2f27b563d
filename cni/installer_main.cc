// abode-cni-install: the init container of the abode-node DaemonSet. See installer.h.
#include <cstdio>

#include "CLI/CLI.hpp"
#include "cni/installer.h"

int main(int argc, char** argv) {
  abode::cni::InstallOptions o;
  CLI::App app{"abode-cni-install: install the abode CNI plugin (and a network configuration) on the host"};
  app.add_option("--plugin", o.plugin, "the plugin binary to install")->capture_default_str();
  app.add_option("--cni-bin-dir", o.cni_bin_dir, "the host's CNI bin directory (as mounted)")->capture_default_str();
  app.add_option("--conflist-file", o.conflist_file, "a network configuration list to install");
  app.add_option("--network", o.network, "write a bridge network with abode IPAM of this name");
  app.add_option("--bridge", o.bridge, "with --network: the bridge")->capture_default_str();
  app.add_option("--range", o.range, "with --network: the range (CIDR) its pods draw from");
  app.add_option("--cni-conf-dir", o.cni_conf_dir, "the host's CNI configuration directory (as mounted)")
      ->capture_default_str();
  app.add_option("--conflist-name", o.conflist_name, "the configuration list's file name")->capture_default_str();
  app.add_flag("--overwrite-conflist", o.overwrite_conflist,
               "replace a configuration list at the destination even when it is not abode's");
  bool check_config = false;
  app.add_flag("--check-config", check_config,
               "validate the flags and the files they name, print the plan, write nothing");
  CLI11_PARSE(app, argc, argv);

  abode::cni::Result<abode::cni::InstallPlan> plan = abode::cni::PlanInstall(o);
  if (!plan.ok()) {
    std::fprintf(stderr, "abode-cni-install: %s\n", plan.error().msg.c_str());
    return 2;
  }
  if (!check_config) {
    if (auto e = abode::cni::Install(o, *plan)) {
      std::fprintf(stderr, "abode-cni-install: %s\n", e->msg.c_str());
      return 1;
    }
  }
  std::printf("abode-cni-install: %s %s -> %s%s%s\n", check_config ? "configuration ok:" : "installed",
              o.plugin.c_str(), plan->plugin_destination.c_str(), plan->conflist_destination.empty() ? "" : ", ",
              plan->conflist_destination.c_str());
  return 0;
}
