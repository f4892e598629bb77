// `backup-operator bundle create | verify | restore`: the command-line face
// of bundle.h and store.h, shared by users and the state-bundle Job.
#pragma once
#include <map>
#include <ostream>
#include <string>
#include <vector>

namespace bo::bundle {

struct CommandArgs {
  std::string command;  // create | verify | restore
  std::string state_root;
  std::vector<std::string> contexts;  // create: one bundle each
  bool all_contexts = false;          // create: every context under <state_root>/contexts
  bool include_releases = true;
  bool forensic_cache = false;
  std::vector<std::string> include;
  std::string key_file, key_env;
  std::string store;  // dir:<path> | s3
  std::string id;     // create: the bundle id (one context); verify/restore: which bundle
  std::string file;   // verify/restore: a bundle file instead of --store/--id
  std::string to_context;  // restore: a context name other than the bundle's
  std::string work_dir;
  bool termination_log = false;  // write the result to $TERMINATION_LOG (default /dev/termination-log)
};

// Prints one JSON line per bundle to `out` and errors (one line each,
// secret values redacted) to `err`. Exit codes: 0 done, 1 refused or
// failed, 2 bad arguments.
int run_bundle_command(const CommandArgs& args, const std::map<std::string, std::string>& env, std::ostream& out,
                       std::ostream& err);

}  // namespace bo::bundle
