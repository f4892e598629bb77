// Linked only into sanitizer builds (BO_SANITIZE) of the programs that tests
// start with an explicit environment (kube-local's exec Pods, the operator's
// run-job, the wal-g stand-in), so they miss the ASAN_OPTIONS that
// scripts/test.sh exports: the same default as there, leak detection off
// (cpprestsdk and OpenSSL keep allocations until exit, which LeakSanitizer
// reports as leaks and turns into exit code 1). ASAN_OPTIONS still overrides it.
extern "C" const char* __asan_default_options() { return "detect_leaks=0"; }
