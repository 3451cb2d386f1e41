#!/usr/bin/env bash
# Installs the dependencies, builds mqfs and mounts it at /mnt/mq (or $1) with
# the default options. The daemon is left running.
set -euo pipefail
cd "$(dirname "$0")/.."
mountpoint=${1:-/mnt/mq}

./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMQFS_TESTS=OFF >/dev/null
cmake --build build -j "$(nproc)"
cmake --install build >/dev/null   # /usr/local/bin/mqfs, mqfs.h, mount helpers

mkdir -p "$mountpoint"
if mountpoint -q "$mountpoint"; then
  echo "Unmounting the mqfs already at $mountpoint"
  umount "$mountpoint"
fi
mqfs "$mountpoint"

cat <<MSG

mqfs is mounted at $mountpoint. Every file there is a message queue:

  echo hello > $mountpoint/jobs        # send a message
  cat $mountpoint/jobs                 # receive one (blocks while the queue is empty)
  getfattr -d $mountpoint/jobs         # its attributes: maxmsg, msgsize, priority, ...

Unmount with:  umount $mountpoint
MSG
