// abodectl: the operators' command line client of the abode allocator.
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "cli/abodectl.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
  std::optional<std::string> server_from_env;
  if (const char* server = std::getenv("ABODE_SERVER"); server != nullptr && *server != '\0') {
    server_from_env = server;
  }
  return abode::cli::RunAbodectl(
      args, server_from_env,
      [](const abode::cli::GlobalOptions& global) { return abode::cli::DialInsecure(global.server, global.timeout); },
      std::cout, std::cerr);
}
