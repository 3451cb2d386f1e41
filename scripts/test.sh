#!/usr/bin/env bash
# Installs the dependencies, builds mqfs with its tests and runs all of them:
# the engine's unit tests and the integration tests that mount real mqfs
# instances. Must run as root (mounting, and tests that switch users).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cmake -S . -B build -DMQFS_TESTS=ON >/dev/null
cmake --build build -j "$(nproc)"
cd build
ctest --output-on-failure --timeout 900
