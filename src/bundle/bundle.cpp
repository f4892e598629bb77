#include "bundle/bundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>

#include "bundle/crypto.h"
#include "bundle/layout.h"
#include "common/encoding.h"
#include "common/timefmt.h"

namespace bo::bundle {
namespace {

using json = nlohmann::json;
template <class T>
using Result = std::expected<T, std::string>;

constexpr std::string_view kMagic = "BOBUNDL1";
constexpr size_t kChunk = 64 * 1024;
constexpr size_t kMaxHeader = 64 * 1024;
constexpr size_t kMaxManifest = 16 * 1024 * 1024;
constexpr const char* kManifestEntry = "manifest.json";
constexpr std::string_view kFilesPrefix = "files/";

std::string errno_text() { return std::strerror(errno); }

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~Fd() { reset(); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  [[nodiscard]] int get() const { return fd_; }
  [[nodiscard]] bool ok() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads up to `buf.size()` bytes; returns bytes read, 0 at end, -1 on error.
ssize_t read_some(int fd, std::string& buf) {
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    return n;
  }
}

bool read_exact(int fd, char* out, size_t n) {
  while (n > 0) {
    const ssize_t r = ::read(fd, out, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    out += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// A temporary file in `dir`, removed unless released.
class TempFile {
 public:
  static Result<TempFile> in(const fs::path& dir, const std::string& stem) {
    std::string pattern = (dir / ("." + stem + ".XXXXXX")).string();
    const int fd = ::mkstemp(pattern.data());
    if (fd < 0) return std::unexpected("cannot create a temporary file in " + dir.string() + ": " + errno_text());
    TempFile t;
    t.path_ = pattern;
    t.fd_ = Fd(fd);
    return t;
  }
  TempFile() = default;
  TempFile(TempFile&& o) noexcept : path_(std::move(o.path_)), fd_(std::move(o.fd_)) { o.path_.clear(); }
  TempFile& operator=(TempFile&&) = delete;
  ~TempFile() {
    fd_.reset();
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] const fs::path& path() const { return path_; }
  void close() { fd_.reset(); }
  // Moves the file to `to` (same file system) and forgets it.
  Result<void> commit(const fs::path& to) {
    if (fd_.ok() && ::fsync(fd_.get()) != 0) return std::unexpected("cannot sync " + path_.string() + ": " + errno_text());
    fd_.reset();
    if (::rename(path_.c_str(), to.c_str()) != 0)
      return std::unexpected("cannot move " + path_.string() + " to " + to.string() + ": " + errno_text());
    path_.clear();
    return {};
  }

 private:
  fs::path path_;
  Fd fd_;
};

fs::path work_dir_or_tmp(const fs::path& p) { return p.empty() ? fs::temp_directory_path() : p; }

// --- collecting ----------------------------------------------------------

struct Source {
  std::string rel;  // path in the bundle
  fs::path file;    // what to read (symlinks inside the root resolved)
};

struct Collected {
  std::vector<Source> sources;
  std::vector<std::string> missing_optional;
};

bool is_under(const fs::path& p, const fs::path& root) {
  const std::string r = root.string(), s = p.string();
  return s.size() > r.size() && s.compare(0, r.size(), r) == 0 && s[r.size()] == '/';
}

class Collector {
 public:
  Collector(fs::path root, fs::path canonical_root) : root_(std::move(root)), canonical_(std::move(canonical_root)) {}

  // A file the bundle should hold: checked, resolved and recorded, or a problem noted.
  void file(const std::string& rel, bool required) {
    if (auto why = unsafe_path_reason(rel)) return problem(rel, *why);
    if (auto why = exclusion_reason(rel)) return problem(rel, *why);
    const fs::path abs = root_ / rel;
    std::error_code ec;
    const auto st = fs::symlink_status(abs, ec);
    if (ec || !fs::exists(st)) {
      if (required) return problem(rel, "required file is missing");
      out_.missing_optional.push_back(rel);
      return;
    }
    const fs::path resolved = fs::canonical(abs, ec);
    if (ec) return problem(rel, "cannot resolve: " + ec.message());
    if (!is_under(resolved, canonical_)) return problem(rel, "resolves outside the context root (" + resolved.string() + ")");
    const std::string resolved_rel = resolved.lexically_relative(canonical_).generic_string();
    if (resolved_rel != rel) {
      if (auto why = exclusion_reason(resolved_rel)) return problem(rel, "links to " + resolved_rel + ": " + *why);
    }
    if (!fs::is_regular_file(fs::status(resolved, ec))) return problem(rel, "not a regular file");
    if (!seen_.insert(rel).second) return;
    out_.sources.push_back({rel, resolved});
  }

  // Every file under a directory of the context root; a symlinked directory is refused, not followed.
  void tree(std::string_view dir) {
    const fs::path abs = root_ / dir;
    std::error_code ec;
    const auto st = fs::symlink_status(abs, ec);
    if (ec || !fs::exists(st)) return;
    if (fs::is_symlink(st)) return problem(std::string(dir), "a symlinked directory is not followed");
    if (!fs::is_directory(st)) return problem(std::string(dir), "not a directory");
    for (auto it = fs::recursive_directory_iterator(abs, fs::directory_options::none, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      const std::string rel = it->path().lexically_relative(root_).generic_string();
      const auto s = it->symlink_status(ec);
      if (ec) break;
      if (fs::is_directory(s)) {
        if (auto why = exclusion_reason(rel)) {
          problem(rel + "/", *why);
          it.disable_recursion_pending();
        }
        continue;
      }
      if (fs::is_symlink(s) && fs::is_directory(fs::status(it->path(), ec))) {
        problem(rel, "a symlinked directory is not followed");
        continue;
      }
      file(rel, true);
    }
    if (ec) problem(std::string(dir), "cannot list: " + ec.message());
  }

  Result<Collected> finish() {
    if (!problems_.empty()) {
      std::string msg = "refused (" + std::to_string(problems_.size()) + (problems_.size() == 1 ? " problem" : " problems") + "): ";
      for (size_t i = 0; i < problems_.size(); ++i) msg += (i ? "; " : "") + problems_[i];
      return std::unexpected(msg);
    }
    std::sort(out_.sources.begin(), out_.sources.end(), [](const Source& a, const Source& b) { return a.rel < b.rel; });
    return std::move(out_);
  }

 private:
  void problem(const std::string& rel, const std::string& why) { problems_.push_back(rel + ": " + why); }
  fs::path root_, canonical_;
  Collected out_;
  std::set<std::string> seen_;
  std::vector<std::string> problems_;
};

// sha256 and size of one file, streamed.
Result<FileEntry> digest(const Source& s) {
  Fd fd(::open(s.file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.ok()) return std::unexpected(s.rel + ": cannot open: " + errno_text());
  Sha256 h;
  std::string buf(kChunk, '\0');
  uint64_t size = 0;
  for (;;) {
    const ssize_t n = read_some(fd.get(), buf);
    if (n < 0) return std::unexpected(s.rel + ": cannot read: " + errno_text());
    if (n == 0) break;
    h.update(buf.data(), static_cast<size_t>(n));
    size += static_cast<uint64_t>(n);
  }
  return FileEntry{s.rel, size, h.hex()};
}

// --- the archive ----------------------------------------------------------

// libarchive writing to a file descriptor, hashing what it writes.
struct ArchiveSink {
  int fd;
  Sha256 hash;
  uint64_t bytes = 0;
  bool failed = false;
};

la_ssize_t sink_write(struct archive*, void* data, const void* buf, size_t n) {
  auto* s = static_cast<ArchiveSink*>(data);
  if (!write_all(s->fd, std::string_view(static_cast<const char*>(buf), n))) {
    s->failed = true;
    return -1;
  }
  s->hash.update(buf, n);
  s->bytes += n;
  return static_cast<la_ssize_t>(n);
}

struct ArchiveDeleter {
  void operator()(struct archive* a) const { archive_write_free(a); }
};
struct ReaderDeleter {
  void operator()(struct archive* a) const { archive_read_free(a); }
};
struct EntryDeleter {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};

// Every header field that could vary between runs is fixed: owner 0:0, no
// names, mode 0644, mtime 0; pax headers only when a path needs them.
std::unique_ptr<archive_entry, EntryDeleter> plain_entry(const std::string& path, uint64_t size) {
  std::unique_ptr<archive_entry, EntryDeleter> e(archive_entry_new());
  archive_entry_set_pathname(e.get(), path.c_str());
  archive_entry_set_filetype(e.get(), AE_IFREG);
  archive_entry_set_perm(e.get(), 0644);
  archive_entry_set_size(e.get(), static_cast<la_int64_t>(size));
  archive_entry_set_mtime(e.get(), 0, 0);
  archive_entry_set_uid(e.get(), 0);
  archive_entry_set_gid(e.get(), 0);
  return e;
}

struct ArchiveResult {
  std::string sha256;
  std::string manifest_sha256;
};

Result<ArchiveResult> write_archive(int fd, const Manifest& manifest, const std::vector<Source>& sources) {
  ArchiveSink sink{fd, {}, 0, false};  // outlives the archive, which flushes into it when freed
  std::unique_ptr<struct archive, ArchiveDeleter> a(archive_write_new());
  auto fail = [&](const std::string& what) -> Result<ArchiveResult> {
    return std::unexpected(what + (sink.failed ? ": " + errno_text() : ": " + std::string(archive_error_string(a.get()) ? archive_error_string(a.get()) : "archive error")));
  };
  if (archive_write_set_format_pax_restricted(a.get()) != ARCHIVE_OK ||
      archive_write_add_filter_gzip(a.get()) != ARCHIVE_OK ||
      archive_write_set_filter_option(a.get(), "gzip", "timestamp", nullptr) != ARCHIVE_OK ||
      archive_write_set_bytes_in_last_block(a.get(), 1) != ARCHIVE_OK)
    return fail("cannot set up the archive");
  if (archive_write_open2(a.get(), &sink, nullptr, sink_write, nullptr, nullptr) != ARCHIVE_OK)
    return fail("cannot open the archive");

  const std::string mtext = manifest_text(manifest);
  auto me = plain_entry(kManifestEntry, mtext.size());
  if (archive_write_header(a.get(), me.get()) != ARCHIVE_OK ||
      archive_write_data(a.get(), mtext.data(), mtext.size()) != static_cast<la_ssize_t>(mtext.size()))
    return fail("cannot write the manifest");

  std::string buf(kChunk, '\0');
  for (size_t i = 0; i < sources.size(); ++i) {
    const Source& s = sources[i];
    const FileEntry& want = manifest.files[i];
    Fd in(::open(s.file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!in.ok()) return std::unexpected(s.rel + ": cannot open: " + errno_text());
    auto e = plain_entry(std::string(kFilesPrefix) + s.rel, want.size);
    if (archive_write_header(a.get(), e.get()) != ARCHIVE_OK) return fail(s.rel + ": cannot write the header");
    Sha256 h;
    uint64_t seen = 0;
    for (;;) {
      const ssize_t n = read_some(in.get(), buf);
      if (n < 0) return std::unexpected(s.rel + ": cannot read: " + errno_text());
      if (n == 0) break;
      h.update(buf.data(), static_cast<size_t>(n));
      // Never write past the size the header announced; a grown file fails below.
      const uint64_t room = seen < want.size ? want.size - seen : 0;
      const size_t take = static_cast<size_t>(std::min<uint64_t>(room, static_cast<uint64_t>(n)));
      if (take > 0 && archive_write_data(a.get(), buf.data(), take) != static_cast<la_ssize_t>(take))
        return fail(s.rel + ": cannot write");
      seen += static_cast<uint64_t>(n);
    }
    if (seen != want.size || h.hex() != want.sha256)
      return std::unexpected(s.rel + ": changed while the bundle was being made (size " + std::to_string(want.size) + " -> " +
                             std::to_string(seen) + "); run it again once writes settle");
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) return fail("cannot finish the archive");
  ArchiveResult r;
  r.sha256 = sink.hash.hex();
  r.manifest_sha256 = sha256_hex(mtext);
  return r;
}

// Reads the archive at `fd`: the manifest, then each file in manifest
// order, checked; `on_file(entry, chunk)` sees each file's bytes.
using FileSink = std::function<Result<void>(const FileEntry&, std::string_view chunk, bool last)>;

Result<Manifest> read_archive(int fd, const std::string& manifest_sha256, const FileSink& on_file) {
  std::unique_ptr<struct archive, ReaderDeleter> a(archive_read_new());
  archive_read_support_filter_gzip(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_fd(a.get(), fd, kChunk) != ARCHIVE_OK)
    return std::unexpected(std::string("archive: ") + (archive_error_string(a.get()) ? archive_error_string(a.get()) : "cannot open"));
  auto err = [&](const std::string& what) -> std::string {
    const char* e = archive_error_string(a.get());
    return "archive: " + what + (e ? std::string(": ") + e : "");
  };
  archive_entry* entry = nullptr;
  if (archive_read_next_header(a.get(), &entry) != ARCHIVE_OK) return std::unexpected(err("no manifest"));
  if (std::string_view(archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "") != kManifestEntry)
    return std::unexpected("archive: the first entry is not manifest.json");
  if (archive_entry_size(entry) < 0 || static_cast<uint64_t>(archive_entry_size(entry)) > kMaxManifest)
    return std::unexpected("archive: manifest.json is larger than 16 MiB");
  std::string mtext(static_cast<size_t>(archive_entry_size(entry)), '\0');
  if (!mtext.empty() && archive_read_data(a.get(), mtext.data(), mtext.size()) != static_cast<la_ssize_t>(mtext.size()))
    return std::unexpected(err("cannot read manifest.json"));
  if (sha256_hex(mtext) != manifest_sha256) return std::unexpected("manifest.json does not match the header's manifestSha256");
  auto manifest = parse_manifest(mtext);
  if (!manifest) return std::unexpected("manifest.json: " + manifest.error());

  std::string buf(kChunk, '\0');
  size_t next = 0;
  for (;;) {
    const int rc = archive_read_next_header(a.get(), &entry);
    if (rc == ARCHIVE_EOF) break;
    if (rc != ARCHIVE_OK) return std::unexpected(err("cannot read an entry"));
    const std::string name = archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "";
    if (!name.starts_with(kFilesPrefix) || archive_entry_filetype(entry) != AE_IFREG)
      return std::unexpected("archive: unexpected entry \"" + name + "\"");
    const std::string rel = name.substr(kFilesPrefix.size());
    if (next >= manifest->files.size() || manifest->files[next].path != rel)
      return std::unexpected("archive: \"" + rel + "\" is not the next file the manifest lists");
    const FileEntry& want = manifest->files[next++];
    Sha256 h;
    uint64_t size = 0;
    for (;;) {
      const la_ssize_t n = archive_read_data(a.get(), buf.data(), buf.size());
      if (n < 0) return std::unexpected(err(rel));
      h.update(buf.data(), static_cast<size_t>(n));
      size += static_cast<uint64_t>(n);
      if (on_file) {
        if (auto r = on_file(want, std::string_view(buf.data(), static_cast<size_t>(n)), n == 0); !r) return std::unexpected(r.error());
      }
      if (n == 0) break;
    }
    if (size != want.size) return std::unexpected(rel + ": " + std::to_string(size) + " bytes, the manifest says " + std::to_string(want.size));
    if (h.hex() != want.sha256) return std::unexpected(rel + ": sha256 does not match the manifest");
  }
  if (next != manifest->files.size())
    return std::unexpected("archive: " + manifest->files[next].path + " is in the manifest but not in the archive");
  return manifest;
}

// --- the encrypted envelope -------------------------------------------------

struct Header {
  json doc;
  std::string text;
  std::string nonce;
};

Result<void> encrypt_file(int plain_fd, int out_fd, const std::string& header_text, std::string_view key,
                          std::string_view nonce, Sha256& object_hash, uint64_t& object_size) {
  std::string prefix(kMagic);
  const uint32_t n = static_cast<uint32_t>(header_text.size());
  for (int shift : {24, 16, 8, 0}) prefix.push_back(static_cast<char>((n >> shift) & 0xff));
  prefix += header_text;
  auto emit = [&](std::string_view bytes) -> Result<void> {
    if (!write_all(out_fd, bytes)) return std::unexpected("cannot write the bundle: " + errno_text());
    object_hash.update(bytes);
    object_size += bytes.size();
    return {};
  };
  if (auto r = emit(prefix); !r) return r;
  Gcm gcm(Gcm::Mode::kEncrypt, key, nonce, header_text);
  if (::lseek(plain_fd, 0, SEEK_SET) < 0) return std::unexpected("cannot rewind the archive: " + errno_text());
  std::string buf(kChunk, '\0'), out;
  for (;;) {
    const ssize_t r = read_some(plain_fd, buf);
    if (r < 0) return std::unexpected("cannot read the archive: " + errno_text());
    if (r == 0) break;
    out.clear();
    gcm.update(std::string_view(buf.data(), static_cast<size_t>(r)), out);
    if (auto w = emit(out); !w) return w;
  }
  return emit(gcm.finish_encrypt());
}

Result<Header> read_header(int fd, uint64_t file_size) {
  std::string magic(kMagic.size(), '\0');
  std::array<unsigned char, 4> len{};
  if (file_size < kMagic.size() + 4 + kTagSize || !read_exact(fd, magic.data(), magic.size()) || magic != kMagic)
    return std::unexpected("not a backup-operator bundle (bad magic)");
  if (!read_exact(fd, reinterpret_cast<char*>(len.data()), 4)) return std::unexpected("truncated bundle header");
  const uint32_t n = (uint32_t{len[0]} << 24) | (uint32_t{len[1]} << 16) | (uint32_t{len[2]} << 8) | uint32_t{len[3]};
  if (n == 0 || n > kMaxHeader || kMagic.size() + 4 + n + kTagSize > file_size) return std::unexpected("bundle header length is invalid");
  Header h;
  h.text.resize(n);
  if (!read_exact(fd, h.text.data(), n)) return std::unexpected("truncated bundle header");
  h.doc = json::parse(h.text, nullptr, false);
  if (!h.doc.is_object()) return std::unexpected("bundle header is not a JSON object");
  auto str = [&](const char* k) { return h.doc.contains(k) && h.doc[k].is_string() ? h.doc[k].get<std::string>() : std::string(); };
  if (!h.doc.contains("format") || h.doc["format"] != 1) return std::unexpected("bundle header: unsupported format (want 1)");
  if (str("cipher") != "AES-256-GCM") return std::unexpected("bundle header: unsupported cipher \"" + str("cipher") + "\"");
  auto nonce = base64_decode(str("nonce"));
  if (!nonce || nonce->size() != kNonceSize) return std::unexpected("bundle header: nonce must be 12 bytes of base64");
  h.nonce = *nonce;
  for (const char* k : {"context", "id", "createdAt", "archiveSha256", "manifestSha256", "keyId"})
    if (str(k).empty()) return std::unexpected(std::string("bundle header: ") + k + " is missing");
  return h;
}

// Decrypts `bundle` into a temporary archive (checking the tag before
// anything reads it) and returns the header.
struct Opened {
  Header header;
  TempFile archive;
  BundleInfo info;
};

Result<Opened> open_bundle(const fs::path& bundle, std::string_view key, const fs::path& work_dir) {
  Fd fd(::open(bundle.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.ok()) return std::unexpected("cannot open " + bundle.string() + ": " + errno_text());
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return std::unexpected(bundle.string() + " is not a regular file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  auto header = read_header(fd.get(), size);
  if (!header) return std::unexpected(header.error());
  const std::string want_key = header->doc["keyId"].get<std::string>();
  if (want_key != key_id(key))
    return std::unexpected("the bundle was encrypted under another key (key id " + want_key + ", this key's id " + key_id(key) + ")");

  auto tmp = TempFile::in(work_dir_or_tmp(work_dir), "bundle-archive");
  if (!tmp) return std::unexpected(tmp.error());
  Sha256 archive_hash, object_hash;
  object_hash.update(kMagic);
  {
    std::string prefix;
    const uint32_t n = static_cast<uint32_t>(header->text.size());
    for (int shift : {24, 16, 8, 0}) prefix.push_back(static_cast<char>((n >> shift) & 0xff));
    object_hash.update(prefix);
    object_hash.update(header->text);
  }
  Gcm gcm(Gcm::Mode::kDecrypt, key, header->nonce, header->text);
  uint64_t remaining = size - kMagic.size() - 4 - header->text.size() - kTagSize;
  std::string buf(kChunk, '\0'), out;
  while (remaining > 0) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(remaining, kChunk));
    if (!read_exact(fd.get(), buf.data(), want)) return std::unexpected("truncated bundle");
    object_hash.update(buf.data(), want);
    out.clear();
    gcm.update(std::string_view(buf.data(), want), out);
    archive_hash.update(out);
    if (!write_all(tmp->fd(), out)) return std::unexpected("cannot write " + tmp->path().string() + ": " + errno_text());
    remaining -= want;
  }
  std::string tag(kTagSize, '\0');
  if (!read_exact(fd.get(), tag.data(), tag.size())) return std::unexpected("truncated bundle");
  object_hash.update(tag);
  if (!gcm.finish_decrypt(tag))
    return std::unexpected("authentication failed: the bundle was altered or truncated after it was made");
  Opened o{std::move(*header), std::move(*tmp), {}};
  const json& d = o.header.doc;
  if (archive_hash.hex() != d["archiveSha256"].get<std::string>())
    return std::unexpected("the archive's sha256 does not match the header");
  o.info.context = d["context"];
  o.info.id = d["id"];
  o.info.created_at = d["createdAt"];
  o.info.sha256 = d["archiveSha256"];
  o.info.key_id = want_key;
  o.info.object_sha256 = object_hash.hex();
  o.info.size = size;
  if (::lseek(o.archive.fd(), 0, SEEK_SET) < 0) return std::unexpected("cannot rewind the archive: " + errno_text());
  return o;
}

void fill_from_manifest(BundleInfo& info, const Manifest& m) {
  info.files = m.files.size();
  info.bytes = 0;
  for (const auto& f : m.files) info.bytes += f.size;
  info.missing_optional = m.missing_optional;
}

// Makes every directory of `rel`'s parent under `root`, refusing symlinks.
Result<fs::path> safe_parent(const fs::path& root, const std::string& rel) {
  fs::path dir = root;
  const fs::path parent = fs::path(rel).parent_path();
  for (const auto& part : parent) {
    dir /= part;
    struct stat st{};
    if (::lstat(dir.c_str(), &st) == 0) {
      if (S_ISLNK(st.st_mode)) return std::unexpected(rel + ": " + dir.string() + " is a symlink in the target; not followed");
      if (!S_ISDIR(st.st_mode)) return std::unexpected(rel + ": " + dir.string() + " exists and is not a directory");
    } else if (::mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
      return std::unexpected(rel + ": cannot create " + dir.string() + ": " + errno_text());
    }
  }
  return dir;
}

}  // namespace

std::string manifest_text(const Manifest& m) {
  json files = json::array();
  for (const auto& f : m.files) files.push_back({{"path", f.path}, {"sha256", f.sha256}, {"size", f.size}});
  json doc = {{"format", 1},
              {"context", m.context},
              {"releases", m.releases},
              {"forensicCache", m.forensic},
              {"files", files},
              {"missingOptional", m.missing_optional}};
  return doc.dump(2) + "\n";
}

std::expected<Manifest, std::string> parse_manifest(std::string_view text) {
  const json doc = json::parse(text, nullptr, false);
  if (!doc.is_object()) return std::unexpected("not a JSON object");
  if (!doc.contains("format") || doc["format"] != 1) return std::unexpected("format: must be 1");
  Manifest m;
  if (!doc.contains("context") || !doc["context"].is_string() || !valid_context_name(doc["context"].get<std::string>()))
    return std::unexpected("context: must be a context name");
  m.context = doc["context"];
  for (auto [key, field] : {std::pair{"releases", &m.releases}, std::pair{"forensicCache", &m.forensic}}) {
    if (!doc.contains(key) || !doc[key].is_boolean()) return std::unexpected(std::string(key) + ": must be true or false");
    *field = doc[key].get<bool>();
  }
  if (!doc.contains("files") || !doc["files"].is_array()) return std::unexpected("files: must be a list");
  const json& files = doc["files"];
  for (size_t i = 0; i < files.size(); ++i) {
    const json& f = files[i];
    const std::string at = "files[" + std::to_string(i) + "]";
    if (!f.is_object() || !f.contains("path") || !f["path"].is_string()) return std::unexpected(at + ".path: must be a string");
    FileEntry e;
    e.path = f["path"];
    if (auto why = unsafe_path_reason(e.path)) return std::unexpected(at + ".path: " + *why);
    if (auto why = exclusion_reason(e.path)) return std::unexpected(at + ".path: " + *why);
    if (!f.contains("size") || !f["size"].is_number_unsigned()) return std::unexpected(at + ".size: must be a non-negative integer");
    e.size = f["size"].get<uint64_t>();
    if (!f.contains("sha256") || !f["sha256"].is_string()) return std::unexpected(at + ".sha256: must be a string");
    e.sha256 = f["sha256"];
    if (e.sha256.size() != 64 || !std::all_of(e.sha256.begin(), e.sha256.end(), [](char c) {
          return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        }))
      return std::unexpected(at + ".sha256: must be 64 lower-case hex digits");
    if (!m.files.empty() && !(m.files.back().path < e.path)) return std::unexpected(at + ".path: not sorted or repeated");
    m.files.push_back(std::move(e));
  }
  if (doc.contains("missingOptional")) {
    if (!doc["missingOptional"].is_array()) return std::unexpected("missingOptional: must be a list");
    for (const auto& p : doc["missingOptional"]) {
      if (!p.is_string()) return std::unexpected("missingOptional: must hold strings");
      m.missing_optional.push_back(p);
    }
  }
  return m;
}

nlohmann::json BundleInfo::to_json() const {
  return {{"context", context}, {"id", id},       {"createdAt", created_at},   {"sha256", sha256},
          {"objectSha256", object_sha256}, {"keyId", key_id}, {"files", files}, {"bytes", bytes},
          {"size", size},       {"missingOptional", missing_optional}};
}

std::expected<BundleInfo, std::string> create_bundle(const CreateOptions& opts, std::string_view key, const fs::path& out) {
  if (key.size() != kKeySize) return std::unexpected("the bundle key must be 32 bytes");
  if (!valid_context_name(opts.context)) return std::unexpected("context \"" + opts.context + "\" is not a valid context name");
  const fs::path root = opts.state_root / "contexts" / opts.context;
  std::error_code ec;
  const auto st = fs::symlink_status(root, ec);
  if (ec || !fs::exists(st)) return std::unexpected("context root " + root.string() + " does not exist");
  if (fs::is_symlink(st)) return std::unexpected("context root " + root.string() + " is a symlink; refusing to follow it");
  if (!fs::is_directory(st)) return std::unexpected("context root " + root.string() + " is not a directory");
  const fs::path canonical = fs::canonical(root, ec);
  if (ec) return std::unexpected("cannot resolve " + root.string() + ": " + ec.message());

  Collector c(root, canonical);
  for (const auto& f : protected_files()) c.file(f.path, f.required);
  if (opts.include_releases) c.tree(kReleasesDir);
  if (opts.forensic_cache) c.tree(kCacheDir);
  for (const auto& extra : opts.include) c.file(extra, true);
  auto collected = c.finish();
  if (!collected) return std::unexpected(collected.error());

  Manifest manifest;
  manifest.context = opts.context;
  manifest.releases = opts.include_releases;
  manifest.forensic = opts.forensic_cache;
  manifest.missing_optional = collected->missing_optional;
  for (const auto& s : collected->sources) {
    auto e = digest(s);
    if (!e) return std::unexpected(e.error());
    manifest.files.push_back(std::move(*e));
  }

  BundleInfo info;
  info.context = opts.context;
  info.created_at = opts.created_at.empty() ? format_rfc3339(std::chrono::system_clock::now()) : opts.created_at;
  if (opts.id.empty()) {
    const auto created = parse_rfc3339(info.created_at);
    if (!created) return std::unexpected("created_at \"" + info.created_at + "\" is not an RFC 3339 time");
    info.id = opts.context + "-" + format_compact_utc(*created);
  } else {
    info.id = opts.id;
  }
  info.key_id = key_id(key);
  fill_from_manifest(info, manifest);

  if (opts.after_scan) opts.after_scan();
  auto archive = TempFile::in(work_dir_or_tmp(opts.work_dir), "bundle-archive");
  if (!archive) return std::unexpected(archive.error());
  auto written = write_archive(archive->fd(), manifest, collected->sources);
  if (!written) return std::unexpected(written.error());
  info.sha256 = written->sha256;

  const std::string nonce = random_bytes(kNonceSize);
  const json header = {{"format", 1},
                       {"cipher", "AES-256-GCM"},
                       {"nonce", base64_encode(nonce)},
                       {"keyId", info.key_id},
                       {"context", info.context},
                       {"id", info.id},
                       {"createdAt", info.created_at},
                       {"archiveSha256", info.sha256},
                       {"manifestSha256", written->manifest_sha256},
                       {"files", info.files},
                       {"bytes", info.bytes}};
  fs::path out_dir = out.parent_path().empty() ? fs::path(".") : out.parent_path();
  auto tmp = TempFile::in(out_dir, out.filename().string());
  if (!tmp) return std::unexpected(tmp.error());
  Sha256 object_hash;
  if (auto r = encrypt_file(archive->fd(), tmp->fd(), header.dump(), key, nonce, object_hash, info.size); !r)
    return std::unexpected(r.error());
  info.object_sha256 = object_hash.hex();
  if (auto r = tmp->commit(out); !r) return std::unexpected(r.error());
  return info;
}

std::expected<BundleInfo, std::string> verify_bundle(const fs::path& bundle, std::string_view key, const fs::path& work_dir) {
  if (key.size() != kKeySize) return std::unexpected("the bundle key must be 32 bytes");
  auto opened = open_bundle(bundle, key, work_dir);
  if (!opened) return std::unexpected(opened.error());
  auto manifest = read_archive(opened->archive.fd(), opened->header.doc["manifestSha256"], nullptr);
  if (!manifest) return std::unexpected(manifest.error());
  if (manifest->context != opened->info.context) return std::unexpected("the manifest's context does not match the header");
  fill_from_manifest(opened->info, *manifest);
  return opened->info;
}

std::expected<BundleInfo, std::string> restore_bundle(const fs::path& bundle, std::string_view key, const RestoreOptions& opts) {
  if (key.size() != kKeySize) return std::unexpected("the bundle key must be 32 bytes");
  if (opts.state_root.empty()) return std::unexpected("a state root is required");
  auto opened = open_bundle(bundle, key, opts.work_dir);
  if (!opened) return std::unexpected(opened.error());
  const std::string context = opts.context.empty() ? opened->info.context : opts.context;
  if (!valid_context_name(context)) return std::unexpected("context \"" + context + "\" is not a valid context name");

  // First pass: verify everything without writing.
  auto manifest = read_archive(opened->archive.fd(), opened->header.doc["manifestSha256"], nullptr);
  if (!manifest) return std::unexpected(manifest.error());
  if (manifest->context != opened->info.context) return std::unexpected("the manifest's context does not match the header");

  // Second pass: stage every file next to its destination, then rename them all.
  std::error_code ec;
  fs::create_directories(opts.state_root / "contexts", ec);
  auto root = safe_parent(opts.state_root, "contexts/" + context + "/x");
  if (!root) return std::unexpected(root.error());
  std::vector<std::pair<TempFile, fs::path>> staged;
  std::optional<TempFile> current;
  if (::lseek(opened->archive.fd(), 0, SEEK_SET) < 0) return std::unexpected("cannot rewind the archive: " + errno_text());
  auto stage = [&](const FileEntry& e, std::string_view chunk, bool last) -> Result<void> {
    if (!current) {
      if (exclusion_reason(e.path)) return std::unexpected(e.path + ": refusing to write under an excluded path");
      auto dir = safe_parent(*root, e.path);
      if (!dir) return std::unexpected(dir.error());
      const fs::path dest = *root / e.path;
      struct stat st{};
      if (::lstat(dest.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return std::unexpected(e.path + ": a directory is in the way");
      auto t = TempFile::in(*dir, fs::path(e.path).filename().string() + ".bo-restore");
      if (!t) return std::unexpected(t.error());
      ::fchmod(t->fd(), 0600);
      current.emplace(std::move(*t));
    }
    if (!write_all(current->fd(), chunk)) return std::unexpected(e.path + ": cannot write: " + errno_text());
    if (last) {
      staged.emplace_back(std::move(*current), *root / e.path);
      current.reset();
    }
    return {};
  };
  auto again = read_archive(opened->archive.fd(), opened->header.doc["manifestSha256"], stage);
  if (!again) return std::unexpected(again.error());
  for (auto& [tmp, dest] : staged)
    if (auto r = tmp.commit(dest); !r) return std::unexpected(r.error());
  Fd dir(::open(root->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.ok()) ::fsync(dir.get());
  fill_from_manifest(opened->info, *manifest);
  return opened->info;
}

}  // namespace bo::bundle
