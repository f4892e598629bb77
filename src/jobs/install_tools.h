// `run-job install-tools`: the scratch verification's init container copies
// this binary, every shared object it has loaded, the dynamic loader and
// wal-g (with wal-g's own shared objects) into TOOLS_DIR, so that both run in
// any image (the database's has none of our libraries) as
//   TOOLS_DIR/ld.so --library-path TOOLS_DIR/lib TOOLS_DIR/bin/<program> args…
// An explicit loader, rather than LD_LIBRARY_PATH, leaks nothing into
// children: the PostgreSQL that verify starts from the image must not load
// our libraries. (CloudNativePG's bootstrap init container copies its
// instance manager into the PostgreSQL image's pod in the same way.)
#pragma once
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "jobs/run_job.h"

namespace bo::jobs {

// TOOLS_DIR (default /tools) receives ld.so, lib/ and bin/{backup-operator,
// wal-g}; wal-g is WALG_BINARY or found on PATH. Before it reports success it
// proves, through the copied loader, that both programs find every shared
// object in TOOLS_DIR/lib. Exit 0, or 1 with {"error"} in the termination message.
int install_tools(const Env& env, std::ostream& log);

// One line of `ld.so --list PROGRAM` (as ldd prints it).
struct LdEntry {
  std::string name;  // as the program needs it (DT_NEEDED), or the loader's path
  std::string path;  // where it was found; empty when "not found" or a virtual object (linux-vdso)
  bool not_found = false;
};
[[nodiscard]] std::vector<LdEntry> parse_ld_list(const std::string& output);

// The program interpreter (PT_INTERP) of an ELF file; nullopt for a static
// executable. Throws std::runtime_error when the file is not a readable
// 64-bit ELF file.
[[nodiscard]] std::optional<std::string> elf_interpreter(const std::string& path);

// How to run a program copied into `tools_dir`: through the copied loader
// when it is dynamically linked, directly when it is static.
[[nodiscard]] std::vector<std::string> tools_command(const std::string& tools_dir, const std::string& program);

}  // namespace bo::jobs
