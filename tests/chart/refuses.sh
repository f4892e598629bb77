#!/bin/sh
# Usage: refuses.sh REGEX COMMAND [ARG...]
# Passes only when COMMAND fails (non-zero exit) AND its output matches REGEX
# (grep -E): a value the chart's schema or templates must refuse, with the
# message a user would read. A command that succeeds, or fails for another
# reason, fails the test.
regex=$1; shift
out=$("$@" 2>&1); rc=$?
printf '%s\n' "$out"
if [ "$rc" -eq 0 ]; then echo "FAIL: the command succeeded; it should have been refused"; exit 1; fi
if ! printf '%s\n' "$out" | grep -Eq -- "$regex"; then echo "FAIL: refused, but not with /$regex/"; exit 1; fi
echo "refused as expected (exit $rc, /$regex/)"
