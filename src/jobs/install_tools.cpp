#include "jobs/install_tools.h"

#include <elf.h>
#include <link.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "common/process.h"
#include "jobs/run_job.h"

namespace bo::jobs {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string get(const Env& env, const std::string& k, const std::string& def = "") {
  auto it = env.find(k);
  return it == env.end() || it->second.empty() ? def : it->second;
}

struct InstallError {
  std::string message;
};

// Every shared object this process has loaded, by the path it was loaded from.
std::vector<std::string> loaded_objects() {
  std::vector<std::string> paths;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto* out = static_cast<std::vector<std::string>*>(data);
        // The main program has an empty name; linux-vdso has no file.
        if (info->dlpi_name && info->dlpi_name[0] == '/') out->push_back(info->dlpi_name);
        return 0;
      },
      &paths);
  return paths;
}

// A program on PATH, as posix_spawnp would find it.
std::string on_path(const std::string& name, const std::string& path_var) {
  if (name.find('/') != std::string::npos) return name;
  std::istringstream dirs(path_var);
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const fs::path p = fs::path(dir.empty() ? "." : dir) / name;
    if (::access(p.c_str(), X_OK) == 0 && fs::is_regular_file(p)) return p.string();
  }
  return "";
}

// Copies `from` (following symbolic links: the file itself) to `to`, readable
// and executable by any user (the postgres container may run as another uid
// than the init container in a pod without fsGroup).
void install_file(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::copy_file(fs::canonical(from, ec), to, fs::copy_options::overwrite_existing, ec);
  if (ec) throw InstallError{"cannot copy " + from.string() + " to " + to.string() + ": " + ec.message()};
  fs::permissions(to, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read |
                          fs::perms::others_exec,
                  ec);
}

// Whether `program`, run through the copied loader, finds every shared object in `lib`.
void check_resolves(const fs::path& tools, const std::string& program) {
  const fs::path lib = tools / "lib";
  auto r = run_process({(tools / "ld.so").string(), "--inhibit-cache", "--library-path", lib.string(), "--list",
                        (tools / "bin" / program).string()});
  if (r.exit_code != 0)
    throw InstallError{"ld.so --list " + program + " failed (exit " + std::to_string(r.exit_code) + "): " + r.err +
                       r.start_error};
  for (const auto& e : parse_ld_list(r.out)) {
    if (e.not_found) throw InstallError{program + " needs " + e.name + ", which is not in " + lib.string()};
    if (e.path.empty() || e.name.starts_with("/")) continue;  // vdso; the loader line
    if (fs::path(e.path).parent_path() != lib)
      throw InstallError{program + " would load " + e.name + " from " + e.path + " instead of " + lib.string()};
  }
}

}  // namespace

std::vector<LdEntry> parse_ld_list(const std::string& output) {
  std::vector<LdEntry> out;
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    size_t a = line.find_first_not_of(" \t");
    if (a == std::string::npos) continue;
    line = line.substr(a);
    LdEntry e;
    const auto arrow = line.find(" => ");
    const auto addr = line.rfind(" (0x");
    if (arrow != std::string::npos) {
      e.name = line.substr(0, arrow);
      std::string rest = line.substr(arrow + 4);
      if (rest.starts_with("not found")) {
        e.not_found = true;
      } else {
        const auto paren = rest.rfind(" (0x");
        e.path = paren == std::string::npos ? rest : rest.substr(0, paren);
      }
    } else if (addr != std::string::npos) {
      e.name = line.substr(0, addr);
      if (e.name.starts_with("/")) e.path = e.name;  // the loader; linux-vdso.so.1 has no file
    } else {
      continue;  // "statically linked" and other notes
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::optional<std::string> elf_interpreter(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  Elf64_Ehdr eh{};
  if (!in.read(reinterpret_cast<char*>(&eh), sizeof eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64)
    throw std::runtime_error(path + " is not a 64-bit ELF file");
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph{};
    in.seekg(static_cast<std::streamoff>(eh.e_phoff + static_cast<uint64_t>(i) * eh.e_phentsize));
    if (!in.read(reinterpret_cast<char*>(&ph), sizeof ph)) throw std::runtime_error(path + ": truncated program headers");
    if (ph.p_type != PT_INTERP) continue;
    if (ph.p_filesz == 0 || ph.p_filesz > 4096) throw std::runtime_error(path + ": bad PT_INTERP");
    std::string interp(ph.p_filesz, '\0');
    in.seekg(static_cast<std::streamoff>(ph.p_offset));
    if (!in.read(interp.data(), static_cast<std::streamsize>(interp.size()))) throw std::runtime_error(path + ": truncated PT_INTERP");
    interp.resize(std::strlen(interp.c_str()));
    return interp;
  }
  return std::nullopt;
}

std::vector<std::string> tools_command(const std::string& tools_dir, const std::string& program) {
  const fs::path tools(tools_dir);
  const std::string bin = (tools / "bin" / program).string();
  bool dynamic = true;
  try {
    dynamic = elf_interpreter(bin).has_value();
  } catch (const std::runtime_error&) {
    // Not an ELF file we can read (a script?): let the loader say what is wrong.
  }
  if (!dynamic) return {bin};
  return {(tools / "ld.so").string(), "--library-path", (tools / "lib").string(), bin};
}

int install_tools(const Env& env, std::ostream& log) {
  const fs::path tools = get(env, "TOOLS_DIR", "/tools");
  try {
    std::error_code ec;
    fs::create_directories(tools / "bin", ec);
    fs::create_directories(tools / "lib", ec);
    if (!fs::is_directory(tools / "bin") || !fs::is_directory(tools / "lib"))
      throw InstallError{"cannot create " + (tools / "bin").string() + " and " + (tools / "lib").string() +
                         " (is TOOLS_DIR an emptyDir mounted writable?)"};
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (ec) throw InstallError{"cannot read /proc/self/exe: " + ec.message()};
    std::optional<std::string> interp;
    try {
      interp = elf_interpreter(self.string());
    } catch (const std::runtime_error& e) {
      throw InstallError{e.what()};
    }
    if (!interp) throw InstallError{self.string() + " is statically linked; run it directly instead"};
    install_file(*interp, tools / "ld.so");
    install_file(self, tools / "bin" / "backup-operator");
    std::map<std::string, std::string> libs;  // file name -> where it came from
    for (const auto& p : loaded_objects()) libs.emplace(fs::path(p).filename().string(), p);

    // wal-g, and what it links against (the loader's own list, as ldd prints it).
    const std::string walg_name = get(env, "WALG_BINARY", "wal-g");
    const std::string walg = on_path(walg_name, get(env, "PATH", "/usr/local/bin:/usr/bin:/bin"));
    if (walg.empty() || !fs::exists(walg))
      throw InstallError{"wal-g not found (WALG_BINARY=" + walg_name + ", PATH=" + get(env, "PATH") +
                         "): the operator's image carries it"};
    install_file(walg, tools / "bin" / "wal-g");
    std::optional<std::string> walg_interp;
    try {
      walg_interp = elf_interpreter(walg);
    } catch (const std::runtime_error& e) {
      throw InstallError{e.what()};
    }
    if (walg_interp) {
      if (fs::canonical(*walg_interp, ec) != fs::canonical(*interp, ec))
        throw InstallError{"wal-g's loader " + *walg_interp + " is not the operator's " + *interp +
                           ": both must run with the same copied loader"};
      auto r = run_process({*interp, "--list", walg});
      if (r.exit_code != 0)
        throw InstallError{"ld.so --list " + walg + " failed (exit " + std::to_string(r.exit_code) + "): " + r.err +
                           r.start_error};
      for (const auto& e : parse_ld_list(r.out)) {
        if (e.not_found) throw InstallError{"wal-g needs " + e.name + ", which is not installed in this image"};
        if (!e.path.empty() && !e.name.starts_with("/")) libs.emplace(fs::path(e.path).filename().string(), e.path);
      }
    }
    for (const auto& [name, from] : libs) install_file(from, tools / "lib" / name);
    // Prove it: through the copied loader, each program finds every library in TOOLS_DIR/lib.
    check_resolves(tools, "backup-operator");
    if (walg_interp) check_resolves(tools, "wal-g");
    log << "run-job: install-tools: " << tools.string() << ": ld.so (" << *interp << "), bin/backup-operator, bin/wal-g ("
        << walg << (walg_interp ? "" : ", static") << "), " << libs.size() << " shared object(s) in lib/\n";
    write_termination(env, json{{"tools", tools.string()}, {"libraries", libs.size()}, {"walg", walg}}.dump());
    return 0;
  } catch (const InstallError& e) {
    const std::string msg = redact(e.message, env);
    log << "run-job: install-tools: " << msg << "\n";
    write_termination(env, json{{"error", "InstallToolsFailed: " + msg}}.dump());
    return 1;
  }
}

}  // namespace bo::jobs
