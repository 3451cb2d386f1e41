"""The first thing a user tries: echo into a queue, cat it back."""
import subprocess


def test_echo_then_cat_returns_the_message(mq):
    mq.sh("echo hi > q")
    assert mq.sh("cat q").stdout == "hi\n"


def test_second_cat_blocks_until_a_message_comes(mq):
    mq.sh("touch q")
    result = mq.sh("timeout 1 cat q", check=False)
    assert result.returncode == 124  # still blocked when timeout ended it
    reader = subprocess.Popen(["timeout", "10", "cat", mq / "q"], stdout=subprocess.PIPE, text=True)
    mq.sh("echo late > q")
    out, _ = reader.communicate(timeout=10)
    assert (reader.returncode, out) == (0, "late\n")
