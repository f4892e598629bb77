// wal-g's libsodium encryption in the stand-in (tools/walg-standin/crypter.h),
// over a real PostgreSQL 15: what is stored is ciphertext in wal-g's
// secretstream framing (24-byte header, 8192-byte chunks + 17 bytes each),
// sentinels and metadata stay plain JSON, an encrypted backup restores and
// recovers, a wrong key or a damaged object fails with a decryption error, and
// WALG_LIBSODIUM_KEY_TRANSFORM / WALG_LIBSODIUM_KEY_PATH follow wal-g's rules.
#include <random>

#include "walg_fixture.h"

namespace walg_test {
namespace {

// 32 bytes 0x00..0x1f, as base64 and hex.
const std::string kB64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const std::string kHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const std::string kKey = "stand-in-sodium-key-0123456789abcdef";  // transform none: its first 32 bytes
const std::string kOtherKey = "another-sodium-key-0123456789abcdef";

bool contains(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

const std::string kLz4Magic("\x04\x22\x4d\x18", 4);

// Stored size of `plain` bytes under wal-g's framing: header, then every 8192-byte chunk and
// the final (possibly empty) one, each with a 17-byte tag.
uint64_t sealed_size(uint64_t plain) { return 24 + plain + 17 * (plain / 8192 + 1); }

class EncryptionTest : public WalgTest {
 protected:
  Env keyed(const Env& crypt, const fs::path& store) const {
    Env e = file_env(store);
    for (const auto& [k, v] : crypt) e[k] = v;
    return e;
  }
  // A WAL-like file of `size` compressible bytes.
  fs::path segment(const std::string& name, size_t size, unsigned seed) {
    std::mt19937 rng(seed);
    std::string bytes(size, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng() % 7);
    const fs::path p = scratch_ / name;
    std::ofstream(p, std::ios::binary) << bytes;
    Postgres::hand_to_server_user(p);
    return p;
  }
  fs::path new_store(const std::string& name) {
    const fs::path s = dir_ / name;
    fs::create_directories(s);
    Postgres::hand_to_server_user(s);
    return s;
  }
};

TEST_F(EncryptionTest, StoredWalIsWalgSecretstreamCiphertextAndRoundTrips) {
  const fs::path seg = segment("000000010000000000000007", 1024 * 1024, 7);
  const fs::path plain_store = new_store("plain"), sealed_store = new_store("sealed");
  ASSERT_EQ(walg({"wal-push", seg.string()}, file_env(plain_store)).exit_code, 0);
  const Env crypt = {{"WALG_LIBSODIUM_KEY", kKey}};
  auto r = walg({"wal-push", seg.string()}, keyed(crypt, sealed_store));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string object = "wal_005/000000010000000000000007.lz4";
  const std::string compressed = slurp(plain_store / object), sealed = slurp(sealed_store / object);
  ASSERT_GT(compressed.size(), 8192u * 2) << "the test needs several chunks";
  EXPECT_EQ(compressed.substr(0, 4), kLz4Magic);
  EXPECT_NE(sealed.substr(0, 4), kLz4Magic);
  EXPECT_EQ(sealed.size(), sealed_size(compressed.size()));  // compress, then encrypt, 8192-byte chunks
  EXPECT_FALSE(contains(sealed, compressed.substr(0, 64)));
  // A fresh header (nonce) each time: pushing again stores different bytes.
  const fs::path again = new_store("again");
  ASSERT_EQ(walg({"wal-push", seg.string()}, keyed(crypt, again)).exit_code, 0);
  EXPECT_NE(slurp(again / object).substr(0, 24), sealed.substr(0, 24));

  const fs::path back = scratch_ / "fetched";
  r = walg({"wal-fetch", "000000010000000000000007", back.string()}, keyed(crypt, sealed_store));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(slurp(back) == slurp(seg));
  // A missing segment is still "no such file" (74), key or not.
  r = walg({"wal-fetch", "0000000100000000000000FF", (scratch_ / "missing").string()}, keyed(crypt, sealed_store));
  EXPECT_EQ(r.exit_code, 74) << r.err;
}

TEST_F(EncryptionTest, EncryptedBackupChainHoldsNoPlaintextAndRestoresEveryRow) {
  const Env crypt = {{"WALG_LIBSODIUM_KEY", kKey}};
  start_server(crypt);
  const std::string canary = "sodium-canary-row-5d1e7a";
  pg_->query("create table t(id int primary key, note text)");
  pg_->query("insert into t values (0, '" + canary + "')");
  insert_rows(1, 100);
  // Control: the same checks find the plaintext in an unencrypted backup.
  const fs::path plain_store = new_store("plain");
  auto r = walg({"backup-push", pg_->data_dir().string()}, file_env(plain_store));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string plain_parts;
  for (const auto& e : fs::recursive_directory_iterator(plain_store / "basebackups_005"))
    if (e.is_regular_file() && e.path().parent_path().filename() == "tar_partitions") plain_parts += slurp(e.path());
  ASSERT_TRUE(contains(plain_parts, "PG_VERSION"));
  ASSERT_TRUE(contains(plain_parts, canary));

  Env env = keyed(crypt, store_);
  env["WALG_DELTA_MAX_STEPS"] = "2";
  const std::string full = push(env);
  insert_rows(101, 200);
  const std::string delta = push(env);
  ASSERT_EQ(sentinel(delta)["DeltaFrom"], full);  // the sentinel is plain JSON (st cat, no key)
  insert_rows(201, 300);
  archive_current_wal();

  size_t partitions = 0, wal = 0;
  for (const auto& e : fs::recursive_directory_iterator(store_)) {
    if (!e.is_regular_file()) continue;
    const std::string bytes = slurp(e.path()), name = e.path().string();
    if (e.path().parent_path().filename() == "tar_partitions" || e.path().parent_path().filename() == "wal_005") {
      (e.path().parent_path().filename() == "wal_005" ? wal : partitions)++;
      EXPECT_FALSE(contains(bytes, "PG_VERSION")) << name;
      EXPECT_FALSE(contains(bytes, canary)) << name;
      EXPECT_FALSE(contains(bytes, "c4ca4238a0b923820dcc509a6f75849b")) << name;  // md5('1'), row 1's note
      EXPECT_NE(bytes.substr(0, 4), kLz4Magic) << name;
      EXPECT_GE(bytes.size(), 24u + 17u) << name;
    } else {
      // Sentinels, metadata.json and files_metadata.json: plain JSON, as wal-g uploads them.
      EXPECT_TRUE(nlohmann::json::accept(bytes)) << name;
    }
  }
  EXPECT_EQ(partitions, 6u);  // part_1, pg_control, backup_label for each backup
  EXPECT_GT(wal, 0u);

  // Restore (partitions and WAL decrypted) and recover every archived row.
  auto restored = restore("LATEST", env, "WALG_FILE_PREFIX=" + store_.string() + " WALG_LIBSODIUM_KEY=" + kKey + " ");
  EXPECT_EQ(restored.value("select count(*) from t"), "301");
  EXPECT_EQ(restored.value("select note from t where id = 0"), canary);
}

TEST_F(EncryptionTest, WrongKeyOrDamagedObjectFailsWithADecryptionError) {
  const Env crypt = {{"WALG_LIBSODIUM_KEY", kKey}};
  start_server(crypt);
  insert_rows(1, 10);
  const std::string name = push(crypt);
  ASSERT_FALSE(name.empty());
  const fs::path seg = segment("000000010000000000000033", 256 * 1024, 33);
  ASSERT_EQ(walg({"wal-push", seg.string()}, keyed(crypt, store_)).exit_code, 0);
  const std::string object = "wal_005/000000010000000000000033.lz4";

  struct Case {
    std::string what;
    Env crypt;
    std::function<void()> damage;
    std::string error;
  };
  const fs::path stored = store_ / object;
  const std::string original = slurp(stored);
  ASSERT_GT(original.size(), 24u + 8209u);
  const auto write_stored = [&](const std::string& bytes) { std::ofstream(stored, std::ios::binary | std::ios::trunc) << bytes; };
  const std::vector<Case> cases = {
      {"wrong key", {{"WALG_LIBSODIUM_KEY", kOtherKey}}, [] {}, "corrupted chunk"},
      {"wrong transform of the same text", {{"WALG_LIBSODIUM_KEY", kHex}, {"WALG_LIBSODIUM_KEY_TRANSFORM", "none"}}, [] {},
       "corrupted chunk"},
      {"flipped ciphertext byte", crypt,
       [&] {
         std::string b = original;
         b[24 + 100] ^= 0x01;
         write_stored(b);
       },
       "corrupted chunk"},
      {"flipped header byte", crypt,
       [&] {
         std::string b = original;
         b[3] ^= 0x80;
         write_stored(b);
       },
       "corrupted chunk"},
      {"cut inside a chunk", crypt, [&] { write_stored(original.substr(0, original.size() - 5)); }, "corrupted chunk"},
      {"cut at a chunk boundary", crypt, [&] { write_stored(original.substr(0, 24 + 8209)); }, "no final chunk"},
      {"cut inside the header", crypt, [&] { write_stored(original.substr(0, 10)); }, "failed to read libsodium header"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    c.damage();
    const fs::path dest = scratch_ / "wal-dest";
    auto r = walg({"wal-fetch", "000000010000000000000033", dest.string()}, keyed(c.crypt, store_));
    EXPECT_NE(r.exit_code, 0) << r.err;
    EXPECT_NE(r.exit_code, 74) << "a decryption failure is not a missing segment: " << r.err;
    EXPECT_TRUE(contains(r.err, "failed to decrypt " + object)) << r.err;
    EXPECT_TRUE(contains(r.err, c.error)) << r.err;
    EXPECT_FALSE(fs::exists(dest));
    EXPECT_FALSE(fs::exists(dest.string() + ".walg-partial"));
    write_stored(original);
  }
  // backup-fetch with the wrong key: a clear error, non-zero exit.
  const fs::path target = new_store("wrong-key-target");
  const auto r = walg({"backup-fetch", target.string(), name}, keyed({{"WALG_LIBSODIUM_KEY", kOtherKey}}, store_));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "ERROR: failed to decrypt basebackups_005/" + name + "/tar_partitions/")) << r.err;
  EXPECT_TRUE(contains(r.err, "corrupted chunk")) << r.err;
  EXPECT_FALSE(fs::exists(target / "PG_VERSION"));
}

// WALG_LIBSODIUM_KEY_TRANSFORM (default none) and WALG_LIBSODIUM_KEY_PATH, per wal-g's
// keytransform.go and crypter.go: a push with one setting, a fetch with another.
TEST_F(EncryptionTest, KeyTransformsFollowWalgRules) {
  const fs::path key_file = scratch_ / "key";
  std::ofstream(key_file) << "  " << kHex << "\n\n";  // white space around it is trimmed
  Postgres::hand_to_server_user(key_file);
  const fs::path spaced_file = scratch_ / "spaced-key";
  std::ofstream(spaced_file) << "\t" << kKey.substr(0, 25) << " \n";
  Postgres::hand_to_server_user(spaced_file);
  const std::string ascii32 = kKey.substr(0, 32);
  std::string ascii32_hex;
  for (unsigned char c : ascii32) {
    char buf[3];
    std::snprintf(buf, sizeof buf, "%02x", c);
    ascii32_hex += buf;
  }
  const Env none_key = {{"WALG_LIBSODIUM_KEY", kKey}};
  struct Case {
    std::string what;
    Env push;
    std::string push_error;  // empty: the push succeeds
    Env fetch = {};          // empty: fetch with `push`
  };
  const std::string prefix = "libsodium Crypter: during key transform: ";
  const std::vector<Case> cases = {
      {"none: 25 bytes (the minimum)", {{"WALG_LIBSODIUM_KEY", kKey.substr(0, 25)}}, ""},
      {"none is the default: 24 bytes refused", {{"WALG_LIBSODIUM_KEY", kKey.substr(0, 24)}},
       prefix + "key length must not be less than 25, got 24"},
      {"none: 24 bytes refused", {{"WALG_LIBSODIUM_KEY", kKey.substr(0, 24)}, {"WALG_LIBSODIUM_KEY_TRANSFORM", "none"}},
       prefix + "key length must not be less than 25, got 24"},
      {"none: only the first 32 bytes count", none_key, "", {{"WALG_LIBSODIUM_KEY", ascii32 + "-anything-after"}}},
      {"none: the raw bytes are the key (same as their hex)", none_key, "",
       {{"WALG_LIBSODIUM_KEY", ascii32_hex}, {"WALG_LIBSODIUM_KEY_TRANSFORM", "hex"}}},
      {"base64 and hex of the same 32 bytes are the same key",
       {{"WALG_LIBSODIUM_KEY", kB64}, {"WALG_LIBSODIUM_KEY_TRANSFORM", "base64"}}, "",
       {{"WALG_LIBSODIUM_KEY", kHex}, {"WALG_LIBSODIUM_KEY_TRANSFORM", "hex"}}},
      {"hex in upper case", {{"WALG_LIBSODIUM_KEY", "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"},
                             {"WALG_LIBSODIUM_KEY_TRANSFORM", "hex"}},
       "", {{"WALG_LIBSODIUM_KEY", kB64}, {"WALG_LIBSODIUM_KEY_TRANSFORM", "base64"}}},
      {"base64 of 31 bytes refused", {{"WALG_LIBSODIUM_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg=="},
                                      {"WALG_LIBSODIUM_KEY_TRANSFORM", "base64"}},
       prefix + "key must be exactly 32 bytes (got 31 bytes)"},
      {"base64 of 33 bytes refused", {{"WALG_LIBSODIUM_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g"},
                                      {"WALG_LIBSODIUM_KEY_TRANSFORM", "base64"}},
       prefix + "key must be exactly 32 bytes (got 33 bytes)"},
      {"base64 without its padding refused", {{"WALG_LIBSODIUM_KEY", kB64.substr(0, kB64.size() - 1)},
                                              {"WALG_LIBSODIUM_KEY_TRANSFORM", "base64"}},
       prefix + "while base64 decoding key: illegal base64 data"},
      {"base64 with a foreign character refused", {{"WALG_LIBSODIUM_KEY", "*" + kB64.substr(1)}, {"WALG_LIBSODIUM_KEY_TRANSFORM", "base64"}},
       prefix + "while base64 decoding key: illegal base64 data at input byte 0"},
      {"a long text is not base64", {{"WALG_LIBSODIUM_KEY", kKey}, {"WALG_LIBSODIUM_KEY_TRANSFORM", "base64"}},
       prefix + "while base64 decoding key"},
      {"hex of 31 bytes refused", {{"WALG_LIBSODIUM_KEY", kHex.substr(0, 62)}, {"WALG_LIBSODIUM_KEY_TRANSFORM", "hex"}},
       prefix + "key must be exactly 32 bytes (got 31 bytes)"},
      {"hex of odd length refused", {{"WALG_LIBSODIUM_KEY", kHex.substr(0, 63)}, {"WALG_LIBSODIUM_KEY_TRANSFORM", "hex"}},
       prefix + "while hex decoding key: encoding/hex: odd length hex string"},
      {"hex with a non-hex digit refused", {{"WALG_LIBSODIUM_KEY", "g" + kHex.substr(1)}, {"WALG_LIBSODIUM_KEY_TRANSFORM", "hex"}},
       prefix + "while hex decoding key: encoding/hex: invalid byte: U+0067"},
      {"unknown transform refused", {{"WALG_LIBSODIUM_KEY", kKey}, {"WALG_LIBSODIUM_KEY_TRANSFORM", "rot13"}},
       prefix + "unknown key transform 'rot13' (must be base64, hex or none)"},
      {"key path, trimmed, with its transform",
       {{"WALG_LIBSODIUM_KEY_PATH", key_file.string()}, {"WALG_LIBSODIUM_KEY_TRANSFORM", "hex"}}, "",
       {{"WALG_LIBSODIUM_KEY", kB64}, {"WALG_LIBSODIUM_KEY_TRANSFORM", "base64"}}},
      {"key path: the trimmed key must still be 25 bytes", {{"WALG_LIBSODIUM_KEY_PATH", spaced_file.string()}}, "",
       {{"WALG_LIBSODIUM_KEY", kKey.substr(0, 25)}}},
      {"inline key wins over key path", {{"WALG_LIBSODIUM_KEY", kKey}, {"WALG_LIBSODIUM_KEY_PATH", "/nonexistent/key"}}, "",
       none_key},
      {"unreadable key path refused", {{"WALG_LIBSODIUM_KEY_PATH", (scratch_ / "no-such-key").string()}},
       "libsodium Crypter: unable to read key from file: open " + (scratch_ / "no-such-key").string()},
      {"PGP stays refused", {{"WALG_PGP_KEY", "x"}}, "wal-g stand-in: encryption (WALG_PGP_KEY) is not implemented"},
      {"KMS stays refused", {{"WALG_CSE_KMS_ID", "x"}}, "wal-g stand-in: encryption (WALG_CSE_KMS_ID) is not implemented"},
  };
  const fs::path seg = segment("000000010000000000000021", 64 * 1024, 21);
  int n = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const fs::path store = new_store("store-" + std::to_string(++n));
    auto r = walg({"wal-push", seg.string()}, keyed(c.push, store));
    if (!c.push_error.empty()) {
      EXPECT_NE(r.exit_code, 0) << r.err;
      EXPECT_TRUE(contains(r.err, "ERROR: " + c.push_error)) << r.err;
      EXPECT_FALSE(fs::exists(store / "wal_005")) << "nothing is stored with a refused key";
      continue;
    }
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string stored = slurp(store / "wal_005/000000010000000000000021.lz4");
    EXPECT_NE(stored.substr(0, 4), kLz4Magic) << "encrypted";
    const fs::path back = scratch_ / ("back-" + std::to_string(n));
    r = walg({"wal-fetch", "000000010000000000000021", back.string()}, keyed(c.fetch.empty() ? c.push : c.fetch, store));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(slurp(back) == slurp(seg));
  }
  // backup-push checks the key before it starts a backup.
  start_server();
  const auto r = walg({"backup-push", pg_->data_dir().string()}, keyed({{"WALG_LIBSODIUM_KEY", "short"}}, store_));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, prefix + "key length must not be less than 25, got 5")) << r.err;
  EXPECT_TRUE(list_json().empty());
}

}  // namespace
}  // namespace walg_test
