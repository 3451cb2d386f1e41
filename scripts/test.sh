#!/usr/bin/env bash
# Installs the dependencies, builds mqfs with its tests and runs all of them
# twice: in the build users get, and in a build with AddressSanitizer and
# UndefinedBehaviorSanitizer (daemon, engine and tests). The engine's unit
# tests and the integration tests that mount real mqfs instances all run in
# both. Then each libFuzzer target runs for a short while over its seed
# corpus (tests/fuzz/README.md). Must run as root (mounting, and tests that
# switch users).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh

run_suite() {  # build directory, extra cmake arguments...
  local dir=$1
  shift
  echo "== $dir"
  cmake -S . -B "$dir" -DMQFS_TESTS=ON -DMQFS_REDIS=ON "$@" >/dev/null
  cmake --build "$dir" -j "$(nproc)"
  (cd "$dir" && ctest --output-on-failure --timeout 900)
}

# A sanitizer report ends the process with an error, which the tests see as
# a failed command or a daemon that did not exit cleanly.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

run_suite build
run_suite build-asan -DMQFS_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug

echo "== build-fuzz"
cmake -S . -B build-fuzz -DMQFS_FUZZ=ON -DMQFS_TESTS=OFF \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target engine_fuzz framing_fuzz parse_fuzz
(cd build-fuzz && ctest -L fuzz --output-on-failure)
