"""The Debian package: built with CPack, it installs, mounts and uninstalls."""
import glob
import os
import subprocess
import tempfile

from helpers import is_mounted

BUILD = os.environ.get("MQFS_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))


def run(*args, timeout=300, **kwargs):
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_deb_installs_mounts_and_uninstalls():
    with tempfile.TemporaryDirectory() as out:
        run("cpack", "-G", "DEB", "-B", out, cwd=BUILD)
        [deb] = glob.glob(os.path.join(out, "mqfs_*.deb"))
        files = run("dpkg-deb", "-c", deb).stdout
        for path in ("./usr/bin/mqfs", "./usr/bin/mq", "./usr/include/mqfs.h", "./usr/share/man/man8/mqfs.8",
                     "./usr/share/man/man1/mq.1", "./usr/share/bash-completion/completions/mq",
                     "./usr/share/mqfs/mount-helpers/mnt-mq.mount"):
            assert path in files, f"{path} missing from the package"

        run("dpkg", "-i", deb)
        mnt = tempfile.mkdtemp(prefix="mqfs-deb-")
        try:
            run("mount", "-t", "fuse.mqfs", "mqfs", mnt, "-o", "maxmsg=3")
            assert is_mounted(mnt)
            with open(os.path.join(mnt, "q"), "w") as f:
                f.write("from the package\n")
            assert os.getxattr(os.path.join(mnt, "q"), "user.mq.maxmsg") == b"3"
            run("/usr/bin/mq", "send", "-p", "7", os.path.join(mnt, "q"), "from mq")
            assert run("/usr/bin/mq", "recv", "-v", "-n", "2", os.path.join(mnt, "q")).stdout == (
                f"{mnt}/q priority=7 type=1 delivery=1\nfrom mq\n"
                f"{mnt}/q priority=0 type=1 delivery=1\nfrom the package\n")
            run("umount", mnt)
            assert "/usr/share/man/man8/mqfs.8" in run("dpkg", "-L", "mqfs").stdout
        finally:
            if is_mounted(mnt):
                subprocess.run(["umount", "-l", mnt], timeout=10)
            os.rmdir(mnt)
            run("dpkg", "-r", "mqfs")
        assert not os.path.exists("/usr/bin/mqfs")
        assert not os.path.exists("/usr/bin/mq")
