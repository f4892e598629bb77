// kubeconfig files: arbitrary YAML through the loader (a file per input, as the loader reads paths).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "kube/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/bo-fuzz-kubeconfig-" + std::to_string(getpid());
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  (void)bo::kube::load_kubeconfig(path);
  (void)bo::kube::load_kubeconfig(path, "other");
  return 0;
}
