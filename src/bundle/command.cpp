#include "bundle/command.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "bundle/bundle.h"
#include "bundle/crypto.h"
#include "bundle/layout.h"
#include "bundle/store.h"
#include "common/redaction.h"
#include "common/timefmt.h"

namespace bo::bundle {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Env = std::map<std::string, std::string>;

constexpr size_t kTerminationLimit = 4096;

std::expected<std::string, std::string> load_key(const CommandArgs& a, const Env& env) {
  if (a.key_file.empty() == a.key_env.empty()) return std::unexpected("give exactly one of --key-file and --key-env");
  std::string text;
  if (!a.key_file.empty()) {
    std::ifstream in(a.key_file, std::ios::binary);
    if (!in) return std::unexpected("--key-file " + a.key_file + ": cannot be read");
    text.resize(1024);
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(in.gcount()));
  } else {
    const auto it = env.find(a.key_env);
    if (it == env.end() || it->second.empty()) return std::unexpected("--key-env " + a.key_env + ": the variable is not set");
    text = it->second;
  }
  auto key = parse_key(text);
  if (!key) return std::unexpected((a.key_file.empty() ? "--key-env " + a.key_env : "--key-file " + a.key_file) + ": " + key.error());
  return *key;
}

void write_termination(const Env& env, const std::string& text) {
  const auto it = env.find("TERMINATION_LOG");
  std::ofstream out(it == env.end() || it->second.empty() ? "/dev/termination-log" : it->second, std::ios::trunc);
  out << text.substr(0, kTerminationLimit);
}

class Command {
 public:
  Command(const CommandArgs& a, const Env& env, std::ostream& out, std::ostream& err) : a_(a), env_(env), out_(out), err_(err) {}

  int run() {
    if (a_.command != "create" && a_.command != "verify" && a_.command != "restore")
      return usage("bundle: the command must be create, verify or restore");
    auto key = load_key(a_, env_);
    if (!key) return usage(key.error());
    key_ = *key;
    work_ = a_.work_dir.empty() ? fs::temp_directory_path() : fs::path(a_.work_dir);
    // POLICY §8: backup artifacts stay outside git workspaces (a commit would carry them off).
    if (auto repo = git_work_tree_of(work_))
      return usage("--work-dir " + work_.string() + " is inside the git work tree " + repo->string() +
                   ": bundles stay outside git workspaces; give a directory elsewhere");
    if (a_.store.starts_with("dir:"))
      if (auto repo = git_work_tree_of(a_.store.substr(4)))
        return usage("--store " + a_.store + " is inside the git work tree " + repo->string() +
                     ": bundles stay outside git workspaces; give a directory elsewhere");
    if (a_.command == "create") return create();
    return fetch_and(a_.command == "restore");
  }

 private:
  int usage(const std::string& msg) {
    err_ << "backup-operator: " << redact_environment(msg, env_) << "\n";
    return 2;
  }
  int fail(const std::string& msg) {
    const std::string text = redact_environment(msg, env_);
    err_ << "backup-operator: bundle " << a_.command << ": " << text << "\n";
    if (a_.termination_log) write_termination(env_, json{{"error", text.substr(0, 3000)}}.dump());
    return 1;
  }

  std::expected<std::unique_ptr<Store>, std::string> store() {
    if (a_.store.empty()) return std::unexpected("--store: required (dir:<path> or s3)");
    return make_store(a_.store, env_);
  }

  int create() {
    if (a_.state_root.empty()) return usage("--state-root: required");
    std::vector<std::string> contexts = a_.contexts;
    if (a_.all_contexts) {
      if (!contexts.empty()) return usage("give --context or --all-contexts, not both");
      std::error_code ec;
      for (const auto& d : fs::directory_iterator(fs::path(a_.state_root) / "contexts", ec))
        if (d.is_directory() && !d.is_symlink() && valid_context_name(d.path().filename().string()))
          contexts.push_back(d.path().filename().string());
      if (ec) return fail("cannot list " + (fs::path(a_.state_root) / "contexts").string() + ": " + ec.message());
      std::sort(contexts.begin(), contexts.end());
      if (contexts.empty()) return fail("no context under " + (fs::path(a_.state_root) / "contexts").string());
    }
    if (contexts.empty()) return usage("--context: required (or --all-contexts)");
    for (const auto& c : contexts)
      if (!valid_context_name(c)) return usage("--context: \"" + c + "\" is not a valid context name");
    auto st = store();
    if (!st) return usage(st.error());
    const std::string tag = a_.id.empty() ? format_compact_utc(std::chrono::system_clock::now()) : a_.id;
    json results = json::array();
    for (const auto& context : contexts) {
      CreateOptions o;
      o.state_root = a_.state_root;
      o.context = context;
      o.include_releases = a_.include_releases;
      o.forensic_cache = a_.forensic_cache;
      o.include = a_.include;
      o.id = context + "-" + tag;
      o.work_dir = work_;
      const fs::path local = work_ / (o.id + ".bundle");
      auto info = create_bundle(o, key_, local);
      if (!info) return fail(context + ": " + info.error());
      // Never over an earlier bundle: two made within one --tag (by default one second) share an id.
      auto where = (*st)->put_new(object_name(context, info->id), local);
      std::error_code ec;
      fs::remove(local, ec);
      if (!where) return fail(context + ": " + where.error());
      json line = info->to_json();
      line["location"] = *where;
      out_ << line.dump() << "\n";
      results.push_back({{"context", info->context}, {"id", info->id}, {"sha256", info->sha256}, {"files", info->files},
                         {"size", info->size}});
    }
    if (a_.termination_log) write_termination(env_, json{{"bundles", results}}.dump());
    return 0;
  }

  int fetch_and(bool restore) {
    fs::path file = a_.file;
    std::optional<fs::path> fetched;
    if (file.empty()) {
      if (a_.contexts.size() != 1 || a_.id.empty()) return usage("give --file, or --store with one --context and --id");
      auto st = store();
      if (!st) return usage(st.error());
      fetched = work_ / (a_.id + ".fetched.bundle");
      if (auto r = (*st)->get(object_name(a_.contexts[0], a_.id), *fetched); !r) return fail(r.error());
      file = *fetched;
    } else if (!a_.store.empty() || !a_.id.empty()) {
      return usage("give --file or --store/--id, not both");
    }
    std::expected<BundleInfo, std::string> info;
    if (restore) {
      if (a_.state_root.empty()) return usage("--state-root: required");
      info = restore_bundle(file, key_, RestoreOptions{a_.state_root, a_.to_context, work_});
    } else {
      info = verify_bundle(file, key_, work_);
    }
    if (fetched) {
      std::error_code ec;
      fs::remove(*fetched, ec);
    }
    if (!info) return fail(info.error());
    json line = info->to_json();
    line["result"] = restore ? "restored" : "verified";
    if (restore) line["restoredTo"] = (fs::path(a_.state_root) / "contexts" / (a_.to_context.empty() ? info->context : a_.to_context)).string();
    out_ << line.dump() << "\n";
    if (a_.termination_log) write_termination(env_, line.dump());
    return 0;
  }

  const CommandArgs& a_;
  const Env& env_;
  std::ostream& out_;
  std::ostream& err_;
  std::string key_;
  fs::path work_;
};

}  // namespace

int run_bundle_command(const CommandArgs& args, const Env& env, std::ostream& out, std::ostream& err) {
  try {
    return Command(args, env, out, err).run();
  } catch (const std::exception& e) {
    err << "backup-operator: bundle " << args.command << ": " << redact_environment(e.what(), env) << "\n";
    return 1;
  }
}

}  // namespace bo::bundle
