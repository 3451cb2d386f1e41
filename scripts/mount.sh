#!/usr/bin/env bash
# Installs the dependencies, builds mqfs and mounts it at /mnt/mq (or $1) with
# the default options. The daemon is left running.
set -euo pipefail
cd "$(dirname "$0")/.."
mountpoint=${1:-/mnt/mq}

./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMQFS_TESTS=OFF >/dev/null
cmake --build build -j "$(nproc)"
cmake --install build >/dev/null   # /usr/local/bin/mqfs and mq, mqfs.h, man pages, mount helpers

# mqfs refuses a mount point that is already a mount. findmnt reads the mount
# table without touching the directory, so it also sees a mount whose daemon
# died (where every access fails); -l detaches one that a waiting reader keeps busy.
if findmnt --mountpoint "$(realpath -m "$mountpoint")" >/dev/null; then
  echo "Unmounting what is already mounted at $mountpoint"
  umount "$mountpoint" 2>/dev/null || umount -l "$mountpoint"
fi
mkdir -p "$mountpoint"
mqfs "$mountpoint"

cat <<MSG

mqfs is mounted at $mountpoint. Every file there is a message queue:

  echo hello > $mountpoint/jobs        # send a message
  cat $mountpoint/jobs                 # receive one (blocks while the queue is empty)
  getfattr -d $mountpoint/jobs         # its attributes: maxmsg, msgsize, priority, ...
  mq send -p 5 $mountpoint/jobs hi     # a message at its own priority
  mq top $mountpoint                   # every queue, live

Unmount with:  umount $mountpoint
MSG
