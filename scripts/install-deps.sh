#!/usr/bin/env bash
# Installs what mqfs needs to build, mount and test, from Debian's packages.
# Does nothing when everything is already installed.
set -euo pipefail

packages=(
  build-essential cmake pkg-config    # toolchain
  libfuse3-dev fuse3                  # libfuse3 low-level API, fusermount3, mount.fuse3
  libspdlog-dev                       # logging
  zlib1g-dev                         # the durable store's record checksums (CRC-32)
  libcli11-dev nlohmann-json3-dev    # mq: its arguments, and `mq stat --json`
  libncurses-dev                     # mq top: the terminal
  libhiredis-dev redis-server        # the Redis store; its tests start their own redis-server
  man-db groff-base bash-completion  # tests: mq(1) renders, completions/mq completes
  e2fsprogs                          # tests: a small full ext4 for the store
  libgtest-dev                        # engine unit tests
  python3 python3-pytest attr         # integration tests: pytest, getfattr/setfattr
  util-linux procps psmisc coreutils  # mount, setpriv, nsenter, ps, timeout
  iproute2                            # tests: hosts as network namespaces (SPEC section 10)
  clang libclang-rt-14-dev            # the fuzz targets: Clang and its libFuzzer
  gnuplot-nox                         # the benchmark's plot
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
