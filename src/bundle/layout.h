// What a PaaS-state bundle may hold (POLICY.md §1–§2), as pure rules over
// paths relative to a context root (<state_root>/contexts/<context>/). The
// collector, the verifier and the restorer all ask these same functions, so
// a path refused at creation is refused at restore too.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bo::bundle {

struct ProtectedFile {
  std::string path;   // relative to the context root
  bool required = false;
};

// §1's files. config.json is required (a context without it is not a
// context); the rest are optional and reported as missing when absent.
[[nodiscard]] const std::vector<ProtectedFile>& protected_files();

inline constexpr std::string_view kReleasesDir = "releases";
inline constexpr std::string_view kCacheDir = "cache";

// Why `rel` must never be in a bundle (§2: vault/, plaintext secret exports,
// dump files, runtime data volumes), or nullopt when it may be.
[[nodiscard]] std::optional<std::string> exclusion_reason(std::string_view rel);

// Why `rel` is not a safe relative path (absolute, empty, ".", "..", a
// backslash or a NUL, or longer than 1024 bytes), or nullopt when it is.
[[nodiscard]] std::optional<std::string> unsafe_path_reason(std::string_view rel);

// A context name is one path component: [A-Za-z0-9._-], not "." or "..", at most 63 characters.
[[nodiscard]] bool valid_context_name(std::string_view name);

// The git work tree `dir` lies in (the nearest directory at or above it,
// symlinks resolved, holding a `.git` directory or file: a repository, a
// worktree or a submodule); nullopt when none. POLICY §8: backup artifacts
// stay outside git workspaces, so neither a bundle store nor a work
// directory may be inside one.
[[nodiscard]] std::optional<std::filesystem::path> git_work_tree_of(const std::filesystem::path& dir);

}  // namespace bo::bundle
