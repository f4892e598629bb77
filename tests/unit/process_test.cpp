// bo::run_process: the program gets its output pipes as stdout and stderr and
// no other copy of them, so no other thread's child keeps them open.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <sstream>

#include "common/process.h"

TEST(RunProcess, TheProgramHasItsOutputPipesOnlyAsStdoutAndStderr) {
  // ls lists /proc/self/fd with each descriptor's target. A pipe end inherited without
  // close-on-exec shows up a second time (and, in a long-lived child of another thread, would
  // keep that pipe from reaching EOF). Descriptors this test inherited itself are not counted.
  const auto r = bo::run_process({"ls", "-l", "/proc/self/fd"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.start_error;
  std::map<std::string, std::string> target;  // fd -> what it is
  std::stringstream lines(r.out);
  for (std::string l; std::getline(lines, l);) {
    const size_t arrow = l.find(" -> ");
    if (arrow == std::string::npos) continue;
    const size_t space = l.rfind(' ', arrow - 1);
    target[l.substr(space + 1, arrow - space - 1)] = l.substr(arrow + 4);
  }
  ASSERT_TRUE(target.count("1") && target.count("2")) << r.out;
  for (const char* fd : {"1", "2"}) {
    const auto copies = std::count_if(target.begin(), target.end(), [&](const auto& t) { return t.second == target[fd]; });
    EXPECT_EQ(copies, 1) << "fd " << fd << " (" << target[fd] << ") is open more than once:\n" << r.out;
  }
}

TEST(RunProcess, OutputAndExitCodeAreThePrograms) {
  const auto r = bo::run_process({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
}
