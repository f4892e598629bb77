// PaaS-state bundles: `backup-operator bundle create | verify | restore`.
//
// A bundle is one file:
//   "BOBUNDL1" | u32 big-endian header length | header (JSON) |
//   AES-256-GCM ciphertext of the archive | 16-byte tag
// The header is the cipher's associated data, so it cannot be altered either.
// The archive is a deterministic gzip'd tar (same files, same bytes):
// "manifest.json" first (context, and path, size and sha256 of every file,
// sorted), then "files/<path>" for each. The bundle's sha256 is the
// archive's; a bundle re-made from unchanged files has the same sha256.
//
// Files are streamed in 64 KiB pieces: memory stays bounded whatever their
// size. The work directory holds the plaintext archive while a bundle is
// made or read and is emptied afterwards.
#pragma once
#include <cstdint>
#include <expected>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bo::bundle {

namespace fs = std::filesystem;

struct FileEntry {
  std::string path;  // relative to the context root
  uint64_t size = 0;
  std::string sha256;
  bool operator==(const FileEntry&) const = default;
};

struct Manifest {
  std::string context;
  bool releases = false;  // releases/ metadata was asked for
  bool forensic = false;  // cache/ was included (a forensic bundle)
  std::vector<FileEntry> files;              // sorted by path, unique
  std::vector<std::string> missing_optional;  // §1 files the context did not have
};

[[nodiscard]] std::string manifest_text(const Manifest& m);
// Strict: every field typed, paths safe and not excluded, sorted and unique,
// sizes and digests well formed. The error names the field.
[[nodiscard]] std::expected<Manifest, std::string> parse_manifest(std::string_view text);

struct BundleInfo {
  std::string context, id, created_at;
  std::string sha256;         // of the archive
  std::string object_sha256;  // of the bundle file as stored
  std::string key_id;
  size_t files = 0;
  uint64_t bytes = 0;  // the files' total size
  uint64_t size = 0;   // the bundle file's size
  std::vector<std::string> missing_optional;
  [[nodiscard]] nlohmann::json to_json() const;
};

struct CreateOptions {
  fs::path state_root;  // holds contexts/<context>/
  std::string context;
  bool include_releases = true;
  bool forensic_cache = false;
  std::vector<std::string> include;  // more files, relative to the context root
  std::string id;                    // default: <context>-<yyyymmddThhmmssZ>
  std::string created_at;            // RFC 3339; default: now
  fs::path work_dir;                 // default: the system temp directory
  std::function<void()> after_scan;  // tests: runs between hashing the files and archiving them
};

// Collects exactly the protected files and writes the encrypted bundle to
// `out` (through a temporary file renamed into place). Refuses, listing
// every offending path, anything §2 excludes, any path escaping the context
// root, a missing required file, or a file that changed while it was read.
[[nodiscard]] std::expected<BundleInfo, std::string> create_bundle(const CreateOptions& opts, std::string_view key,
                                                                   const fs::path& out);

// Checks the header, the key, the authentication tag, the archive's sha256,
// the manifest and every file's size and sha256.
[[nodiscard]] std::expected<BundleInfo, std::string> verify_bundle(const fs::path& bundle, std::string_view key,
                                                                   const fs::path& work_dir = {});

struct RestoreOptions {
  fs::path state_root;
  std::string context;  // default: the bundle's context
  fs::path work_dir;
};

// Verifies the bundle completely, then writes every file under
// <state_root>/contexts/<context>/ through a temporary file and a rename.
// Nothing is written before verification passes; nothing is ever created or
// overwritten under vault/, and no symlink in the target is followed.
[[nodiscard]] std::expected<BundleInfo, std::string> restore_bundle(const fs::path& bundle, std::string_view key,
                                                                    const RestoreOptions& opts);

}  // namespace bo::bundle
