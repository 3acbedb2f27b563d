// abode-cni-install: puts the `abode` plugin into the host's CNI bin directory, and optionally a network
// configuration list into its configuration directory, from an init container that has no shell. Each file
// appears whole or not at all: it is written beside its destination under a temporary name, synced, then
// renamed over the destination, so the runtime never executes or reads a half-written file.
#ifndef ABODE_CNI_INSTALLER_H_
#define ABODE_CNI_INSTALLER_H_

#include <string>

#include "cni/cni_error.h"

namespace abode::cni {

struct InstallOptions {
  std::string plugin = "/usr/local/bin/abode";  // --plugin: the file to install
  std::string cni_bin_dir = "/host/opt/cni/bin";  // --cni-bin-dir: installed there as `abode`, mode 0755
  // The configuration list, from --conflist-file, or made from --network/--bridge/--range (a bridge network
  // whose IPAM is abode). Neither: no configuration is written.
  std::string conflist_file;
  std::string network;
  std::string bridge = "cni0";
  std::string range;
  std::string cni_conf_dir = "/host/etc/cni/net.d";  // --cni-conf-dir
  std::string conflist_name = "10-abode.conflist";   // --conflist-name
  // A file already at the destination is replaced only when it is an abode configuration (a list whose one
  // IPAM is abode), or with --overwrite-conflist: a node's own network configuration is never taken over
  // by mistake.
  bool overwrite_conflist = false;
};

// What Install() will do, decided from the options and the files they name, without writing anything.
struct InstallPlan {
  std::string plugin_destination;
  std::string conflist_destination;  // empty: none
  std::string conflist;              // the text to write there
};

// Validates the options, reads the plugin's metadata and the configuration file, and looks at the file the
// configuration would replace. Errors name the flag (code 7, invalid configuration; code 5 when a named file
// cannot be read).
Result<InstallPlan> PlanInstall(const InstallOptions& options);

// Carries out a plan: copies the plugin, then writes the configuration list. Code 5 on an I/O failure.
Outcome Install(const InstallOptions& options, const InstallPlan& plan);

// Writes `content` to `path` through a temporary file in the same directory: write, fchmod `mode`, fsync,
// rename, fsync the directory. On failure the destination is untouched and the temporary file removed.
Outcome WriteFileAtomically(const std::string& path, const std::string& content, unsigned mode);

// Checks a configuration list: cniVersion abode speaks, a name, a non-empty `plugins` array with exactly one
// plugin whose IPAM is abode, and that plugin's configuration as the plugin would parse it. `field` prefixes
// the error message (the flag the list came from).
Outcome CheckConflist(const std::string& text, const std::string& field);

}  // namespace abode::cni

#endif  // ABODE_CNI_INSTALLER_H_
