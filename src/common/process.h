// Runs a program and captures its output (posix_spawn, no shell): the Job
// side uses it to drive wal-g.
#pragma once
#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace bo {

struct ProcessResult {
  int exit_code = -1;  // -1: could not start or killed by a signal
  std::string out;
  std::string err;
  std::string start_error;  // why it could not start
};

// `argv[0]` is looked up on PATH. Output beyond `max_output` bytes per stream is dropped.
ProcessResult run_process(const std::vector<std::string>& argv, size_t max_output = 16 * 1024 * 1024);
// The same with `env` as the program's whole environment instead of this
// process's (e.g. wal-g pointed at one storage only, nothing inherited).
ProcessResult run_process(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                          size_t max_output = 16 * 1024 * 1024);

}  // namespace bo
