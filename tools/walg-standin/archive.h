// Tar partitions and WAL files as wal-g stores them: tar archives compressed
// with LZ4 (wal-g's default WALG_COMPRESSION_METHOD, the ".lz4" extension),
// written and read with libarchive.
#pragma once
#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

struct archive;

namespace walg {

class TarWriter {
 public:
  explicit TarWriter(const std::filesystem::path& out);  // out: *.tar.lz4
  ~TarWriter();
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;

  void add_directory(const std::string& name, const struct stat& st);
  // Copies exactly st.st_size bytes of `source` (zero-padded if it shrank meanwhile, as the
  // header is already written; WAL replay repairs files that change during a backup).
  void add_file(const std::string& name, const std::filesystem::path& source, const struct stat& st);
  void add_bytes(const std::string& name, const std::string& content, unsigned mode);
  void close();
  // Bytes of file content added (wal-g's UncompressedSize counts these).
  [[nodiscard]] uint64_t content_bytes() const { return content_bytes_; }

 private:
  ::archive* a_ = nullptr;
  std::string path_;
  uint64_t content_bytes_ = 0;
};

// Extracts the members `want(name, is_directory)` accepts into `dest`.
void extract_tar(const std::filesystem::path& tar, const std::filesystem::path& dest,
                 const std::function<bool(const std::string&, bool)>& want);

// A single file compressed to / from the LZ4 frame format.
void compress_lz4(const std::filesystem::path& in, const std::filesystem::path& out);
void decompress_lz4(const std::filesystem::path& in, const std::filesystem::path& out);

}  // namespace walg
