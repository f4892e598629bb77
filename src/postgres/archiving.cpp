#include "postgres/archiving.h"

#include <libpq-fe.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <memory>
#include <vector>

#include "common/timefmt.h"

namespace bo::postgres {
namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string basename(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool is_name(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

// NAME=VALUE as a shell reads an assignment before a command.
bool is_assignment(const std::string& word) {
  const auto eq = word.find('=');
  return eq != std::string::npos && is_name(word.substr(0, eq));
}

// --- the archive_command rule -------------------------------------------------
//
// archive_command runs under /bin/sh. It "pushes with wal-g" when, read as
// the shell would (words split on blanks; '…' and "…" quote; a backslash
// escapes), it is one simple command of this shape and nothing else:
//
//   [NAME=VALUE ...] [wrapper ...] [PATH/]wal-g [global flags] wal-push %p [redirections]
//
// - wrappers: `env [-i] [-u NAME] [NAME=VALUE ...]`, `envdir DIR` (daemontools,
//   as WAL-E/WAL-G setups use), `exec`; and `sh|bash|dash [-l|--login] -c 'CMD'`
//   whose CMD follows this same rule (at most three levels deep);
// - the program's last path component is exactly `wal-g`;
// - global flags are words starting with '-' (`--config FILE` takes the next word);
// - the subcommand is `wal-push` and its only argument `%p` (the segment's
//   path; `%f` alone is a bare file name wal-g cannot open from the data
//   directory);
// - redirections (`>`, `>>`, `2>&1`, `>FILE`, `> FILE`) may appear anywhere:
//   they do not change the exit status PostgreSQL judges.
//
// Refused: several commands (`;`, `&&`, `||`, `|`, `&`, a newline), command
// substitution (`$(…)`, backticks), input redirection, any other program
// (cp, a custom script, wal-e), `wal-g` with another subcommand or argument.
// `wal-g wal-push %p || true` is the case this exists for: it would report
// success while nothing reaches storage.

struct Word {
  std::string text;
  bool redirect = false;  // an unquoted '>' in it
};

// Splits like sh; empty on a construct the rule refuses (with `why` set).
std::optional<std::vector<Word>> shell_words(const std::string& s, std::string& why) {
  std::vector<Word> words;
  Word cur;
  bool in_word = false;
  enum { kNone, kSingle, kDouble } q = kNone;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (q == kSingle) {
      if (c == '\'') q = kNone;
      else cur.text += c;
      continue;
    }
    if (q == kDouble) {
      if (c == '"') q = kNone;
      else if (c == '\\' && i + 1 < s.size() && std::string("\"\\$`").find(s[i + 1]) != std::string::npos) cur.text += s[++i];
      else if (c == '`' || (c == '$' && i + 1 < s.size() && s[i + 1] == '(')) {
        why = "it uses command substitution";
        return std::nullopt;
      } else cur.text += c;
      continue;
    }
    if (c == ' ' || c == '\t') {
      if (in_word) words.push_back(std::move(cur));
      cur = {};
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '\'') q = kSingle;
    else if (c == '"') q = kDouble;
    else if (c == '\\' && i + 1 < s.size()) cur.text += s[++i];
    else if (c == '>') {
      cur.redirect = true;
      cur.text += c;
    } else if (c == '&' && !cur.text.empty() && cur.text.back() == '>' && cur.redirect) {
      cur.text += c;
    } else if (c == ';' || c == '|' || c == '&' || c == '\n' || c == '\r') {
      why = "it chains commands ('" + std::string(1, c == '\n' || c == '\r' ? ' ' : c) +
            "'): only wal-g's exit status may reach PostgreSQL";
      return std::nullopt;
    } else if (c == '`' || (c == '$' && i + 1 < s.size() && s[i + 1] == '(')) {
      why = "it uses command substitution";
      return std::nullopt;
    } else if (c == '<' || c == '(' || c == ')') {
      why = std::string("it uses '") + c + "'";
      return std::nullopt;
    } else {
      cur.text += c;
    }
  }
  if (q != kNone) {
    why = "it has an unterminated quote";
    return std::nullopt;
  }
  if (in_word) words.push_back(std::move(cur));
  return words;
}

bool walg_rule(const std::string& command, std::string& why, int depth) {
  auto split = shell_words(command, why);
  if (!split) return false;
  // Redirections go, with their target when it is the next word.
  std::vector<std::string> w;
  for (size_t i = 0; i < split->size(); ++i) {
    const Word& word = (*split)[i];
    if (!word.redirect) {
      w.push_back(word.text);
      continue;
    }
    const std::string& t = word.text;
    const bool has_target = t.back() != '>' && !(t.size() >= 2 && t.ends_with(">&"));
    if (!has_target) ++i;  // "> FILE"
  }
  if (w.empty()) {
    why = "it is empty";
    return false;
  }
  size_t i = 0;
  while (i < w.size() && is_assignment(w[i])) ++i;
  for (bool wrapped = true; wrapped && i < w.size();) {
    const std::string prog = basename(w[i]);
    wrapped = true;
    if (prog == "env") {
      ++i;
      while (i < w.size() && (is_assignment(w[i]) || w[i].starts_with("-"))) i += w[i] == "-u" ? 2 : 1;
    } else if (prog == "envdir") {
      i += 2;
    } else if (prog == "exec") {
      ++i;
    } else if (prog == "sh" || prog == "bash" || prog == "dash") {
      size_t j = i + 1;
      while (j < w.size() && (w[j] == "-l" || w[j] == "--login")) ++j;
      if (j + 2 != w.size() || w[j] != "-c") {
        why = "it runs " + prog + " other than as `" + prog + " -c 'wal-g wal-push %p'`";
        return false;
      }
      if (depth >= 3) {
        why = "it nests shells too deeply";
        return false;
      }
      return walg_rule(w[j + 1], why, depth + 1);
    } else {
      wrapped = false;
    }
  }
  if (i >= w.size()) {
    why = "it names no program after its wrappers";
    return false;
  }
  if (basename(w[i]) != "wal-g") {
    why = "it runs `" + basename(w[i]) + "`, not wal-g";
    return false;
  }
  ++i;
  while (i < w.size() && w[i].starts_with("-")) i += w[i] == "--config" ? 2 : 1;
  if (i >= w.size() || w[i] != "wal-push") {
    why = "it calls wal-g with `" + (i < w.size() ? w[i] : std::string()) + "`, not `wal-push %p`";
    return false;
  }
  if (i + 1 >= w.size() || w[i + 1] != "%p") {
    why = "wal-push's argument must be exactly %p (the segment's path)";
    return false;
  }
  if (i + 2 != w.size()) {
    why = "it passes `" + w[i + 2] + "` after %p";
    return false;
  }
  return true;
}

bool secret_name(const std::string& name) {
  const std::string n = lower(name);
  for (const char* s : {"key", "secret", "password", "passwd", "pwd", "token", "credential", "auth", "session"})
    if (n.find(s) != std::string::npos) return true;
  return false;
}

SysTime from_epoch(double seconds) {
  return SysTime(std::chrono::duration_cast<SysTime::duration>(std::chrono::duration<double>(seconds)));
}

std::string when(const std::optional<SysTime>& t) { return t ? format_rfc3339(*t) : std::string("never"); }

}  // namespace

bool pushes_with_walg(const std::string& archive_command, std::string* why) {
  std::string reason;
  const bool ok = walg_rule(archive_command, reason, 0);
  if (why) *why = reason;
  return ok;
}

std::string redact_command(const std::string& command) {
  std::string out;
  size_t i = 0;
  while (i < command.size()) {
    // A NAME=VALUE or --name=value whose name looks secret: the value goes, up to the next blank.
    const auto eq = command.find('=', i);
    if (eq == std::string::npos) {
      out += command.substr(i);
      break;
    }
    size_t start = eq;
    while (start > i && (std::isalnum(static_cast<unsigned char>(command[start - 1])) || command[start - 1] == '_' ||
                         command[start - 1] == '-'))
      --start;
    out += command.substr(i, eq + 1 - i);
    size_t end = eq + 1;
    // A quoted value runs to its closing quote.
    if (end < command.size() && (command[end] == '\'' || command[end] == '"')) {
      const auto close = command.find(command[end], end + 1);
      end = close == std::string::npos ? command.size() : close + 1;
    } else {
      while (end < command.size() && command[end] != ' ' && command[end] != '\t') ++end;
    }
    if (secret_name(command.substr(start, eq - start))) out += "[redacted]";
    else out += command.substr(eq + 1, end - eq - 1);
    i = end;
  }
  // scheme://user:password@host
  for (size_t pos = 0; (pos = out.find("://", pos)) != std::string::npos;) {
    const size_t auth = pos + 3;
    const size_t stop = out.find_first_of(" \t/'\"", auth);
    const size_t at = out.find('@', auth);
    const size_t colon = out.find(':', auth);
    if (at != std::string::npos && colon != std::string::npos && colon < at && (stop == std::string::npos || at < stop))
      out.replace(colon + 1, at - colon - 1, "[redacted]");
    pos = auth;
  }
  if (out.size() > 512) {
    out.resize(509);
    out += "...";
  }
  return out;
}

bool ArchiveObservation::same_essentials(const ArchiveObservation& o) const {
  return error == o.error && archive_mode == o.archive_mode && archive_command == o.archive_command &&
         archive_library == o.archive_library && archive_timeout_seconds == o.archive_timeout_seconds &&
         data_directory == o.data_directory && in_recovery == o.in_recovery && archived_count == o.archived_count &&
         last_archived_wal == o.last_archived_wal && last_archived_time == o.last_archived_time &&
         failed_count == o.failed_count && last_failed_wal == o.last_failed_wal &&
         last_failed_time == o.last_failed_time && stats_reset == o.stats_reset;
}

bool wal_waiting(const ArchiveObservation& obs) {
  const auto last = parse_wal_name(obs.last_archived_wal, obs.wal_segment_size);
  if (!last || !obs.current_lsn || !obs.current_timeline || *obs.current_timeline != last->timeline) return false;
  const uint64_t next_start = (last->segno + 1) * obs.wal_segment_size;
  if (obs.archive_timeout_seconds > 0) return *obs.current_lsn > next_start;
  return *obs.current_lsn >= next_start + obs.wal_segment_size;
}

// The rules, first match wins:
//  1. the probe failed                          -> False DatabaseUnreachable
//  2. archive_mode off (or unreadable)          -> False ArchiveModeOff
//     a standby with archive_mode = on archives nothing -> False ArchiveModeOff
//  3. archive_library set, or archive_command not the wal-g rule above
//                                               -> False ArchiveCommandNotWalG
//  4. a failure at or after the last success    -> False ArchivingFailing
//  5. nothing archived since stats_reset        -> Unknown AwaitingFirstArchive
//  6. stale: WAL is waiting (wal_waiting) and has waited, and the last archive
//     is older than max(2 * archive_timeout, 5 min); both measured on the
//     server's clock. An idle server (nothing written past the last archived
//     segment) is never stale, whatever archive_timeout says: PostgreSQL
//     switches segments on archive_timeout only when WAL was written, so
//     silence is expected. With archive_timeout = 0 only a completed,
//     unarchived segment counts as waiting (a partly written one is not due).
//                                               -> False ArchivingStale
//  7. otherwise                                 -> True ArchivingHealthy
// Messages carry no ages, only stored times, so an unchanged database
// yields the same message (and no status write).
ArchivingCondition evaluate_archiving(const ArchiveObservation& obs) {
  if (!obs.error.empty())
    return {"False", "DatabaseUnreachable",
            "cannot read the archiving settings from the database named by spec.database: " + obs.error};
  const std::string mode = lower(obs.archive_mode);
  if (mode != "on" && mode != "always")
    return {"False", "ArchiveModeOff",
            "archive_mode is '" + obs.archive_mode +
                "': set archive_mode = on and archive_command = 'wal-g wal-push %p' in postgresql.conf (archive_mode "
                "needs a restart); without archived WAL no backup is restorable"};
  if (obs.in_recovery && mode == "on")
    return {"False", "ArchiveModeOff",
            "the server is a standby and archive_mode = on archives nothing during recovery: point spec.database.host "
            "at the primary, or set archive_mode = always"};
  if (!obs.archive_library.empty())
    return {"False", "ArchiveCommandNotWalG",
            "archive_library is '" + obs.archive_library +
                "', so archive_command is not used: reset archive_library and set archive_command = 'wal-g wal-push %p'"};
  if (std::string why; !pushes_with_walg(obs.archive_command, &why))
    return {"False", "ArchiveCommandNotWalG",
            "archive_command '" + redact_command(obs.archive_command) + "' does not push with wal-g (" + why +
                "): set archive_command = 'wal-g wal-push %p' (a wrapper such as envdir DIR, env, a path to wal-g "
                "or sh -c is accepted)"};
  if (obs.failed_count > 0 && obs.last_failed_time &&
      (!obs.last_archived_time || *obs.last_failed_time >= *obs.last_archived_time))
    return {"False", "ArchivingFailing",
            "archiving WAL segment " + obs.last_failed_wal + " failed at " + when(obs.last_failed_time) +
                " and nothing was archived since (last success: " +
                (obs.last_archived_wal.empty() ? std::string("none") : obs.last_archived_wal + " at " + when(obs.last_archived_time)) +
                "): wal-g's error is in PostgreSQL's log; check the storage settings wal-g reads"};
  if (!obs.last_archived_time)
    return {"Unknown", "AwaitingFirstArchive",
            "no WAL segment has been archived since " + when(obs.stats_reset) +
                "; the first backup (or SELECT pg_switch_wal()) archives one"};
  const auto threshold = std::max<std::chrono::seconds>(std::chrono::seconds(2 * obs.archive_timeout_seconds), kStaleFloor);
  const SysTime waiting_since = obs.waiting_since.value_or(*obs.last_archived_time);
  if (wal_waiting(obs) && obs.server_now - *obs.last_archived_time > threshold &&
      obs.server_now - waiting_since >= threshold)
    return {"False", "ArchivingStale",
            "WAL is waiting to be archived but nothing was archived since " + obs.last_archived_wal + " at " +
                when(obs.last_archived_time) + " (stale after " + std::to_string(threshold.count()) +
                "s: max(2 * archive_timeout, " + std::to_string(kStaleFloor.count()) +
                "s)): check the archiver process and wal-g in PostgreSQL's log"};
  return {"True", "ArchivingHealthy",
          "WAL is archived with wal-g; last segment " + obs.last_archived_wal + " at " + when(obs.last_archived_time)};
}

// --- WAL segments -------------------------------------------------------------

std::optional<WalSegment> parse_wal_name(const std::string& name, uint64_t segment_size) {
  if (name.size() < 24 || segment_size == 0) return std::nullopt;
  const std::string rest = name.substr(24);
  if (!rest.empty() && rest != ".partial") {
    // .NNNNNNNN.backup
    if (!(rest.size() == 16 && rest[0] == '.' && rest.ends_with(".backup"))) return std::nullopt;
  }
  uint32_t parts[3];
  for (int k = 0; k < 3; ++k) {
    const char* b = name.data() + 8 * k;
    if (!std::all_of(b, b + 8, [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) && !std::islower(static_cast<unsigned char>(c)); }))
      return std::nullopt;
    std::from_chars(b, b + 8, parts[k], 16);
  }
  const uint64_t per_log = 0x100000000ull / segment_size;
  if (parts[2] >= per_log) return std::nullopt;
  return WalSegment{parts[0], uint64_t{parts[1]} * per_log + parts[2]};
}

std::string wal_name(const WalSegment& s, uint64_t segment_size) {
  const uint64_t per_log = 0x100000000ull / segment_size;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%08X%08X%08X", s.timeline, static_cast<unsigned>(s.segno / per_log),
                static_cast<unsigned>(s.segno % per_log));
  return buf;
}

std::optional<uint64_t> parse_lsn(const std::string& text) {
  const auto slash = text.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 >= text.size() || slash > 8 || text.size() - slash - 1 > 8)
    return std::nullopt;
  uint32_t hi = 0, lo = 0;
  auto a = std::from_chars(text.data(), text.data() + slash, hi, 16);
  auto b = std::from_chars(text.data() + slash + 1, text.data() + text.size(), lo, 16);
  if (a.ec != std::errc() || a.ptr != text.data() + slash || b.ec != std::errc() || b.ptr != text.data() + text.size())
    return std::nullopt;
  return (uint64_t{hi} << 32) | lo;
}

std::string format_lsn(uint64_t lsn) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%X/%X", static_cast<unsigned>(lsn >> 32), static_cast<unsigned>(lsn & 0xffffffffu));
  return buf;
}

LsnRange segment_range(const WalSegment& s, uint64_t segment_size) {
  return {s.segno * segment_size, (s.segno + 1) * segment_size};
}

WalSegment segment_of(uint32_t timeline, uint64_t lsn, uint64_t segment_size) { return {timeline, lsn / segment_size}; }

bool wal_archived_through(const std::string& last_archived_wal, uint32_t timeline, uint64_t end_lsn,
                          uint64_t segment_size) {
  if (last_archived_wal.ends_with(".partial") || last_archived_wal.ends_with(".backup")) return false;
  const auto last = parse_wal_name(last_archived_wal, segment_size);
  if (!last || last->timeline != timeline) return false;
  if (end_lsn == 0) return true;
  return last->segno >= segment_of(timeline, end_lsn - 1, segment_size).segno;
}

// --- the probe ------------------------------------------------------------------

namespace {

// libpq's messages never carry the password, and may carry the user name
// ("password authentication failed for user ..."): both come from the
// credentials Secret, so neither is repeated.
std::string redact_credentials(std::string text, const ConnectionParams& p) {
  for (const std::string* secret : {&p.password, &p.user})
    if (secret->size() >= 3)
      for (size_t pos; (pos = text.find(*secret)) != std::string::npos;) text.replace(pos, secret->size(), "[redacted]");
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  for (auto& c : text)
    if (c == '\n') c = ' ';
  return text;
}

constexpr const char* kQuery = R"SQL(
SELECT current_setting('archive_mode'),
       current_setting('archive_command'),
       current_setting('archive_library'),
       (SELECT setting FROM pg_settings WHERE name = 'archive_timeout'),
       current_setting('data_directory'),
       pg_is_in_recovery()::text,
       extract(epoch FROM now())::float8::text,
       (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'),
       (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END,
       a.archived_count::text, a.last_archived_wal, extract(epoch FROM a.last_archived_time)::float8::text,
       a.failed_count::text, a.last_failed_wal, extract(epoch FROM a.last_failed_time)::float8::text,
       extract(epoch FROM a.stats_reset)::float8::text
  FROM pg_stat_archiver a
)SQL";

template <class T>
T number(const char* s, T fallback = 0) {
  T v = fallback;
  if (s) std::from_chars(s, s + std::char_traits<char>::length(s), v);
  return v;
}

std::optional<SysTime> epoch_time(PGresult* r, int col) {
  if (PQgetisnull(r, 0, col)) return std::nullopt;
  return from_epoch(std::strtod(PQgetvalue(r, 0, col), nullptr));
}

}  // namespace

ArchiveObservation probe_archiving(const ConnectionParams& p) {
  ArchiveObservation obs;
  const std::string port = std::to_string(p.port);
  const std::string connect_timeout = std::to_string(std::max<long long>(2, p.connect_timeout.count()));
  const std::string options = "-c statement_timeout=" + std::to_string(p.statement_timeout.count());
  const std::string user_timeout = std::to_string(p.statement_timeout.count() + 5000);
  const std::array<const char*, 12> keys = {"host",    "port",            "dbname",           "user",
                                            "password", "connect_timeout", "options",          "application_name",
                                            "keepalives", "tcp_user_timeout", "client_encoding", nullptr};
  const std::array<const char*, 12> values = {p.host.c_str(),  port.c_str(),   p.dbname.c_str(),
                                              p.user.c_str(),  p.password.c_str(), connect_timeout.c_str(),
                                              options.c_str(), "backup-operator", "1",
                                              user_timeout.c_str(), "UTF8",         nullptr};
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdbParams(keys.data(), values.data(), 0), &PQfinish);
  if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
    obs.error = "connecting to " + p.host + ":" + port + ": " +
                redact_credentials(conn ? PQerrorMessage(conn.get()) : "out of memory", p);
    return obs;
  }
  std::unique_ptr<PGresult, decltype(&PQclear)> res(PQexec(conn.get(), kQuery), &PQclear);
  if (!res || PQresultStatus(res.get()) != PGRES_TUPLES_OK || PQntuples(res.get()) != 1) {
    obs.error = "reading archiving state: " + redact_credentials(PQerrorMessage(conn.get()), p);
    if (const char* state = res ? PQresultErrorField(res.get(), PG_DIAG_SQLSTATE) : nullptr;
        state && std::string(state) == "42501")
      obs.error += " (GRANT pg_read_all_settings TO the role in the credentials Secret)";
    return obs;
  }
  PGresult* r = res.get();
  auto text = [&](int col) { return PQgetisnull(r, 0, col) ? std::string() : std::string(PQgetvalue(r, 0, col)); };
  obs.archive_mode = text(0);
  obs.archive_command = text(1);
  obs.archive_library = text(2);
  obs.archive_timeout_seconds = number<int64_t>(PQgetvalue(r, 0, 3));
  obs.data_directory = text(4);
  obs.in_recovery = text(5) == "true";
  obs.server_now = from_epoch(std::strtod(PQgetvalue(r, 0, 6), nullptr));
  obs.wal_segment_size = number<uint64_t>(PQgetvalue(r, 0, 7), kDefaultWalSegmentSize);
  if (obs.wal_segment_size == 0) obs.wal_segment_size = kDefaultWalSegmentSize;
  obs.current_lsn = parse_lsn(text(8));
  if (!PQgetisnull(r, 0, 9)) {
    uint32_t tl = 0;
    const std::string t = text(9);
    if (std::from_chars(t.data(), t.data() + t.size(), tl, 16).ec == std::errc()) obs.current_timeline = tl;
    else obs.current_timeline.reset();
  }
  obs.archived_count = number<int64_t>(PQgetvalue(r, 0, 10));
  obs.last_archived_wal = text(11);
  obs.last_archived_time = epoch_time(r, 12);
  obs.failed_count = number<int64_t>(PQgetvalue(r, 0, 13));
  obs.last_failed_wal = text(14);
  obs.last_failed_time = epoch_time(r, 15);
  obs.stats_reset = epoch_time(r, 16);
  return obs;
}

}  // namespace bo::postgres
