#include "archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "common.h"

namespace walg {
namespace fs = std::filesystem;

namespace {

void check(::archive* a, int rc, const std::string& what) {
  if (rc < ARCHIVE_WARN) throw Failure{what + ": " + (archive_error_string(a) ? archive_error_string(a) : "libarchive error")};
}

struct EntryDeleter {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};
using Entry = std::unique_ptr<archive_entry, EntryDeleter>;

Entry make_entry(const std::string& name, const struct stat& st) {
  Entry e(archive_entry_new());
  archive_entry_set_pathname(e.get(), name.c_str());
  archive_entry_copy_stat(e.get(), &st);
  archive_entry_set_uname(e.get(), "");
  archive_entry_set_gname(e.get(), "");
  return e;
}

}  // namespace

TarWriter::TarWriter(const fs::path& out) : path_(out.string()) {
  a_ = archive_write_new();
  check(a_, archive_write_set_format_pax_restricted(a_), "tar " + path_);
  check(a_, archive_write_add_filter_lz4(a_), "lz4 " + path_);
  check(a_, archive_write_open_filename(a_, path_.c_str()), "open " + path_);
}

TarWriter::~TarWriter() {
  if (a_) archive_write_free(a_);
}

void TarWriter::add_directory(const std::string& name, const struct stat& st) {
  auto e = make_entry(name, st);
  check(a_, archive_write_header(a_, e.get()), "tar header " + name);
}

void TarWriter::add_file(const std::string& name, const fs::path& source, const struct stat& st) {
  auto e = make_entry(name, st);
  check(a_, archive_write_header(a_, e.get()), "tar header " + name);
  const int fd = ::open(source.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Failure{"cannot read " + source.string() + ": " + std::strerror(errno)};
  std::vector<char> buf(1 << 16);
  uint64_t left = static_cast<uint64_t>(st.st_size);
  while (left > 0) {
    const ssize_t n = ::read(fd, buf.data(), std::min<uint64_t>(left, buf.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      throw Failure{"cannot read " + source.string() + ": " + std::strerror(errno)};
    }
    if (n == 0) {  // shrank: pad what the header promised
      std::fill(buf.begin(), buf.end(), 0);
      while (left > 0) {
        const auto k = std::min<uint64_t>(left, buf.size());
        archive_write_data(a_, buf.data(), k);
        left -= k;
      }
      break;
    }
    if (archive_write_data(a_, buf.data(), static_cast<size_t>(n)) < 0) {
      ::close(fd);
      check(a_, ARCHIVE_FATAL, "tar data " + name);
    }
    left -= static_cast<uint64_t>(n);
  }
  ::close(fd);
  content_bytes_ += static_cast<uint64_t>(st.st_size);
}

void TarWriter::add_bytes(const std::string& name, const std::string& content, unsigned mode) {
  struct stat st {};
  st.st_mode = S_IFREG | mode;
  st.st_size = static_cast<off_t>(content.size());
  st.st_mtime = ::time(nullptr);
  auto e = make_entry(name, st);
  check(a_, archive_write_header(a_, e.get()), "tar header " + name);
  if (!content.empty() && archive_write_data(a_, content.data(), content.size()) < 0) check(a_, ARCHIVE_FATAL, "tar data " + name);
  content_bytes_ += content.size();
}

void TarWriter::close() {
  check(a_, archive_write_close(a_), "close " + path_);
  archive_write_free(a_);
  a_ = nullptr;
}

void extract_tar(const fs::path& tar, const fs::path& dest, const std::function<bool(const std::string&, bool)>& want) {
  ::archive* a = archive_read_new();
  std::unique_ptr<::archive, int (*)(::archive*)> guard(a, archive_read_free);
  archive_read_support_format_tar(a);
  archive_read_support_filter_all(a);
  check(a, archive_read_open_filename(a, tar.c_str(), 1 << 16), "open " + tar.string());
  archive_entry* e = nullptr;
  std::vector<char> buf(1 << 16);
  for (;;) {
    const int rc = archive_read_next_header(a, &e);
    if (rc == ARCHIVE_EOF) break;
    check(a, rc, "read " + tar.string());
    const std::string name = archive_entry_pathname(e);
    if (name.empty() || name.find("..") != std::string::npos || name.front() == '/')
      throw Failure{"unsafe member name in " + tar.string() + ": " + name};
    const bool is_dir = archive_entry_filetype(e) == AE_IFDIR;
    if (!want(name, is_dir)) continue;
    const fs::path target = dest / name;
    if (is_dir) {
      fs::create_directories(target);
      fs::permissions(target, fs::perms::owner_all);
      continue;
    }
    if (archive_entry_filetype(e) != AE_IFREG) continue;  // symlinks: tablespaces are not supported
    fs::create_directories(target.parent_path());
    const int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, archive_entry_perm(e) & 0777);
    if (fd < 0) throw Failure{"cannot write " + target.string() + ": " + std::strerror(errno)};
    for (;;) {
      const la_ssize_t n = archive_read_data(a, buf.data(), buf.size());
      if (n == 0) break;
      if (n < 0) {
        ::close(fd);
        check(a, ARCHIVE_FATAL, "read " + name);
      }
      if (::write(fd, buf.data(), static_cast<size_t>(n)) != n) {
        ::close(fd);
        throw Failure{"cannot write " + target.string() + ": " + std::strerror(errno)};
      }
    }
    ::close(fd);
  }
}

void compress_lz4(const fs::path& in, const fs::path& out) {
  ::archive* a = archive_write_new();
  std::unique_ptr<::archive, int (*)(::archive*)> guard(a, archive_write_free);
  check(a, archive_write_set_format_raw(a), "raw");
  check(a, archive_write_add_filter_lz4(a), "lz4");
  check(a, archive_write_open_filename(a, out.c_str()), "open " + out.string());
  struct stat st {};
  if (::stat(in.c_str(), &st) != 0) throw Failure{"cannot stat " + in.string() + ": " + std::strerror(errno)};
  auto e = make_entry(in.filename().string(), st);
  check(a, archive_write_header(a, e.get()), "header " + in.string());
  const int fd = ::open(in.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Failure{"cannot read " + in.string() + ": " + std::strerror(errno)};
  std::vector<char> buf(1 << 16);
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    archive_write_data(a, buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  check(a, archive_write_close(a), "close " + out.string());
}

void decompress_lz4(const fs::path& in, const fs::path& out) {
  ::archive* a = archive_read_new();
  std::unique_ptr<::archive, int (*)(::archive*)> guard(a, archive_read_free);
  archive_read_support_format_raw(a);
  archive_read_support_filter_all(a);
  check(a, archive_read_open_filename(a, in.c_str(), 1 << 16), "open " + in.string());
  archive_entry* e = nullptr;
  check(a, archive_read_next_header(a, &e), "read " + in.string());
  const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw Failure{"cannot write " + out.string() + ": " + std::strerror(errno)};
  std::vector<char> buf(1 << 16);
  for (;;) {
    const la_ssize_t n = archive_read_data(a, buf.data(), buf.size());
    if (n == 0) break;
    if (n < 0 || ::write(fd, buf.data(), static_cast<size_t>(n)) != n) {
      ::close(fd);
      throw Failure{"cannot decompress " + in.string()};
    }
  }
  ::close(fd);
}

}  // namespace walg
