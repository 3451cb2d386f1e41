"""mq's manual page (docs/mq.1) and bash completion (completions/mq).

- The page renders through man(1) and groff(1) without a warning.
- It documents what mq's contract (SPEC section 15) fixes: the six commands, the
  variables of `mq work`, the exit statuses, the output formats.
- Its options and those of the program agree: every option that
  `mq [COMMAND] --help` lists is in the page (in that command's subsection),
  and every option of the page's SYNOPSIS is in the help. The program is
  $MQ_BIN (default build/mq).
- The completion offers the commands, each command's options, the sort
  orders of `mq top -s`, queue files and directories, and a command line
  after `mq work QUEUE --`, both in a plain bash and with the bash-completion
  package loaded.

Needs man-db, groff-base and bash-completion (scripts/install-deps.sh).
"""
import os
import re
import shlex
import shutil
import subprocess
import tempfile

import pytest

ROOT = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PAGE = os.path.join(ROOT, "docs", "mq.1")
COMPLETION = os.path.join(ROOT, "completions", "mq")
BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"
MQ = os.environ.get("MQ_BIN", os.path.join(ROOT, "build", "mq"))

COMMANDS = ("send", "recv", "peek", "work", "stat", "top")

# An option as the page and the help write it: -p, --raw (not 4-byte, Ctrl-C).
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def run(args, env=None, timeout=60, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                          env=env, **kwargs)


def need(program, package):
    assert shutil.which(program), f"{program} is missing: install {package} (scripts/install-deps.sh)"


# -- the page renders -----------------------------------------------------------------------------

def man_warnings(page):
    """What `man --warnings` prints on standard error for the page."""
    need("man", "man-db")
    env = dict(os.environ, LC_ALL="C.UTF-8", MANROFFSEQ="", MANWIDTH="80")
    result = run(["man", "--warnings", "-E", "UTF-8", "-l", page], env=env)
    assert result.returncode == 0, f"man failed ({result.returncode}):\n{result.stderr}"
    assert "mq send" in result.stdout, "man printed no page"
    return result.stderr


def groff_warnings(page):
    """What `groff -man -ww -z` prints on standard error for the page."""
    need("groff", "groff-base")
    result = run(["groff", "-man", "-ww", "-z", page])
    return result.stderr + ("" if result.returncode == 0 else f"groff exited {result.returncode}\n")


def test_man_renders_the_page_without_warnings():
    assert man_warnings(PAGE) == ""


def test_groff_renders_the_page_without_warnings():
    assert groff_warnings(PAGE) == ""


def test_the_render_checks_see_a_warning():
    # A page with an unknown macro and a bad escape: the checks above must fail on it.
    with open(PAGE) as f:
        text = f.read()
    broken = text.replace(".SH DESCRIPTION\n", ".SH DESCRIPTION\n.XQ unknown macro\n\\*[nostring] \\qbad\n", 1)
    assert broken != text
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "mq.1")
        with open(path, "w") as f:
            f.write(broken)
        assert man_warnings(path) != ""
        assert groff_warnings(path) != ""


# -- the page's text ------------------------------------------------------------------------------

def rendered():
    """The page as plain text, 200 columns wide so that no option line wraps."""
    need("groff", "groff-base")
    result = run(["groff", "-man", "-Tutf8", "-rLL=200n", "-P-cbou", PAGE],
                 env=dict(os.environ, LC_ALL="C.UTF-8"))
    assert result.returncode == 0, result.stderr
    # Whatever glyph the device gives \- and -, read it as "-".
    return result.stdout.replace("\u2212", "-").replace("\u2010", "-")


def sections(text):
    """{heading: body} for the .SH headings (column 0, with their subsections)
    and the .SS ones (column 3); the first of a name wins."""
    lines = text.splitlines()
    headings = []  # (line index, level, name)
    for i, line in enumerate(lines):
        m = re.fullmatch(r"( {0,3})(\S.*?)\s*", line)
        if m and not line.startswith("MQ(1)") and not line.startswith("mqfs "):
            headings.append((i, len(m.group(1)), m.group(2)))
    out = {}
    for n, (i, level, name) in enumerate(headings):
        end = next((j for j, lvl, _ in headings[n + 1:] if lvl <= level), len(lines))
        out.setdefault(name, "\n".join(lines[i + 1:end]))
    return out


def synopses(text):
    """{command or "": set of options} from the SYNOPSIS, "" for mq's own."""
    body = sections(text)["SYNOPSIS"]
    out = {}
    for block in re.split(r"\n\s*\n", body):
        words = block.split()
        if not words:
            continue
        assert words[0] == "mq", f"a SYNOPSIS line not of mq: {block!r}"
        command = words[1] if len(words) > 1 and words[1] in COMMANDS else ""
        out.setdefault(command, set()).update(OPTION.findall(block))
    return out


def test_the_page_documents_the_contract():
    text = rendered()
    parts = sections(text)
    for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "OUTPUT", "ENVIRONMENT",
                    "EXIT STATUS", "EXAMPLES", "SEE ALSO"):
        assert heading in parts, f"no section {heading}"
    assert set(synopses(text)) == set(COMMANDS) | {""}
    for command in COMMANDS:
        assert f"mq {command}" in parts, f"no subsection for mq {command}"
    for variable in ("MQ_QUEUE", "MQ_PRIORITY", "MQ_TYPE", "MQ_DELIVERY", "MQ_ID"):
        assert variable in parts["ENVIRONMENT"]
    for status in "0123":
        assert re.search(rf"^\s+{status}\s+\S", parts["EXIT STATUS"], re.M), f"exit status {status}"
    for column in ("QUEUE", "MSGS", "BYTES", "MAXMSG", "MSGSIZE", "READERS", "WRITERS", "INFLIGHT",
                   "SENT", "RECEIVED", "OLDEST"):
        assert re.search(rf"(?<![\w/]){column}(?![\w/])", parts["OUTPUT"]), f"stat column {column}"
    for key in ("queue", "kind", "messages", "bytes", "maxmsg", "msgsize", "waiting_readers",
                "waiting_writers", "inflight", "sent", "received", "dead_lettered", "dropped",
                "subscribers", "oldest_ms"):
        assert f'"{key}"' in parts["OUTPUT"], f"JSON key {key}"
    for metric in ("mq_messages", "mq_bytes", "mq_maxmsg", "mq_msgsize", "mq_waiting_readers",
                   "mq_waiting_writers", "mq_inflight", "mq_oldest_seconds", "mq_sent_total",
                   "mq_received_total", "mq_dead_lettered_total", "mq_dropped_total"):
        assert re.search(rf"\b{metric}\b", parts["OUTPUT"]), f"metric {metric}"
    assert "priority=p type=t delivery=d" in parts["OUTPUT"]
    for page in ("mqfs(8)", "mq_overview(7)", "msgrcv(2)"):
        assert page in parts["SEE ALSO"]


# -- the page and the program agree ---------------------------------------------------------------

def help_text(*command):
    assert os.access(MQ, os.X_OK), f"no mq program at {MQ} (set MQ_BIN)"
    result = run([MQ, *command, "--help"], timeout=30)
    assert result.returncode == 0, f"mq {' '.join(command)} --help exited {result.returncode}:\n{result.stderr}"
    assert result.stdout.strip(), f"mq {' '.join(command)} --help printed nothing"
    return result.stdout


def help_options(text):
    """The options a CLI11 help lists: lines such as `  -p,--priority INT  ...`."""
    options = set()
    for line in text.splitlines():
        m = re.match(r"\s{1,12}(-\S*)", line)
        if not m:
            continue
        for name in m.group(1).split(","):
            name = name.split("=")[0].rstrip(":")
            if re.fullmatch(r"--?[A-Za-z0-9][\w-]*", name):
                options.add(name)
    return options


def help_commands(text):
    """The commands a CLI11 help lists under `Subcommands:`."""
    m = re.search(r"^Subcommands:\s*\n((?:[ \t]+\S.*\n?)+)", text, re.M)
    assert m, f"mq --help lists no subcommands:\n{text}"
    return {line.split()[0] for line in m.group(1).splitlines()
            if re.match(r"\s{1,12}[a-z]", line)}


def test_the_help_lists_the_six_commands():
    assert help_commands(help_text()) == set(COMMANDS)


@pytest.mark.parametrize("command", ("",) + COMMANDS)
def test_every_option_of_the_help_is_in_the_page(command):
    options = help_options(help_text(*([command] if command else [])))
    assert "--help" in options, "the help parser found no --help: the help's format changed?"
    parts = sections(rendered())
    # mq's own options and --help are in OPTIONS; a command's in its subsection.
    where = parts["OPTIONS"] if not command else parts[f"mq {command}"]
    documented = set(OPTION.findall(where)) | ({"-h", "--help"} & set(OPTION.findall(parts["OPTIONS"])))
    missing = options - documented
    assert not missing, f"mq {command} --help lists {sorted(missing)}, which docs/mq.1 does not document there"


@pytest.mark.parametrize("command", ("",) + COMMANDS)
def test_every_option_of_the_synopsis_is_in_the_help(command):
    synopsis = synopses(rendered())[command]
    options = help_options(help_text(*([command] if command else [])))
    if not command:
        # `mq [command] --help` stands in the SYNOPSIS for every command's --help.
        synopsis = synopsis - {"--help"} | ({"--help"} & options)
    missing = synopsis - options
    assert not missing, f"docs/mq.1 SYNOPSIS gives mq {command} {sorted(missing)}, which its --help does not list"


# -- the completion -------------------------------------------------------------------------------

MODES = ("plain-bash", "bash-completion")


def complete(mode, *words):
    """What the completion offers for `words` (the last one being completed)."""
    need("bash", "bash")
    prelude = ""
    if mode == "bash-completion":
        assert os.path.exists(BASH_COMPLETION), f"{BASH_COMPLETION} is missing: install bash-completion"
        prelude = f"source {shlex.quote(BASH_COMPLETION)} || exit 9\n"
    line = " ".join(words)
    script = prelude + f"""
source {shlex.quote(COMPLETION)} || exit 9
spec=$(complete -p mq) || exit 8
fn=${{spec##*-F }}; fn=${{fn%% *}}
COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})
COMP_CWORD={len(words) - 1}
COMP_LINE={shlex.quote(line)}
COMP_POINT=${{#COMP_LINE}}
COMP_TYPE=9 COMP_KEY=9
"$fn" mq {shlex.quote(words[-1])} {shlex.quote(words[-2])}
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    result = run(["bash", "--norc", "--noprofile", "-c", script], cwd=ROOT, timeout=60)
    assert result.returncode == 0, f"completion failed ({result.returncode}):\n{result.stderr}"
    # Called outside a real completion, compopt says so; anything else is the script's error.
    errors = [line for line in result.stderr.splitlines()
              if "compopt: not currently executing completion function" not in line]
    assert not errors, "\n".join(errors)
    return [line for line in result.stdout.splitlines() if line]


@pytest.fixture
def tree():
    """A directory with queues `jobs` and `jobs.dead` and a directory `images`."""
    with tempfile.TemporaryDirectory(prefix="mq-complete-") as tmp:
        for name in ("jobs", "jobs.dead"):
            open(os.path.join(tmp, name), "w").close()
        os.mkdir(os.path.join(tmp, "images"))
        open(os.path.join(tmp, "images", "big"), "w").close()
        yield tmp


@pytest.mark.parametrize("mode", MODES)
def test_completes_the_commands(mode):
    assert complete(mode, "mq", "se") == ["send"]
    assert sorted(complete(mode, "mq", "")) == sorted(COMMANDS)
    assert "--version" in complete(mode, "mq", "--")


@pytest.mark.parametrize("mode", MODES)
def test_completes_the_options_of_recv(mode):
    offered = set(complete(mode, "mq", "recv", "-"))
    assert {"-t", "-x", "-n", "-w", "-v", "--raw", "--type", "--except", "--count", "--wait",
            "--verbose"} <= offered
    assert not {"-p", "-j", "--priority", "--json"} & offered
    assert set(complete(mode, "mq", "recv", "--r")) == {"--raw"}
    # -t and -x exclude each other; an option given, by either name, is not offered again.
    offered = set(complete(mode, "mq", "recv", "-t", "2", "-"))
    assert not {"-t", "--type", "-x", "--except"} & offered and {"-n", "--count"} <= offered
    offered = set(complete(mode, "mq", "recv", "--count", "2", "-v", "--"))
    assert not {"--count", "--verbose"} & offered and "--type" in offered


@pytest.mark.parametrize("mode", MODES)
def test_completes_the_options_of_each_command(mode):
    expected = {"send": {"-p", "-t", "-w", "--priority", "--type", "--wait"},
                "peek": {"-n", "-t", "-x", "-v", "--raw", "--count", "--type", "--except", "--verbose"},
                "work": {"-j", "-n", "--jobs", "--count"},
                "stat": {"-r", "--recursive", "--json", "--prometheus"},
                "top": {"-s", "-d", "--sort", "--delay"}}
    for command, options in expected.items():
        assert options <= set(complete(mode, "mq", command, "-")), command
    assert "--prometheus" not in complete(mode, "mq", "stat", "--json", "--")


@pytest.mark.parametrize("mode", MODES)
def test_completes_the_sort_orders_of_top(mode):
    assert sorted(complete(mode, "mq", "top", "-s", "")) == ["depth", "name", "rate"]
    assert complete(mode, "mq", "top", "-s", "r") == ["rate"]
    assert complete(mode, "mq", "top", "--sort", "n") == ["name"]
    assert sorted(complete(mode, "mq", "top", "--sort", "=", "")) == ["depth", "name", "rate"]
    assert complete(mode, "mq", "top", "--sort", "=", "d") == ["depth"]
    assert complete(mode, "mq", "recv", "-n", "") == []


@pytest.mark.parametrize("mode", MODES)
def test_completes_queue_files(mode, tree):
    assert sorted(complete(mode, "mq", "send", f"{tree}/j")) == [f"{tree}/jobs", f"{tree}/jobs.dead"]
    assert complete(mode, "mq", "send", "-p", "3", f"{tree}/jobs.") == [f"{tree}/jobs.dead"]
    assert complete(mode, "mq", "recv", f"{tree}/jobs", f"{tree}/jobs.") == [f"{tree}/jobs.dead"]
    assert complete(mode, "mq", "stat", "-r", f"{tree}/i") == [f"{tree}/images"]
    assert sorted(complete(mode, "mq", "top", "-s", "rate", f"{tree}/")) \
        == [f"{tree}/images", f"{tree}/jobs", f"{tree}/jobs.dead"]
    # One queue for peek and top; send's messages are not files.
    assert complete(mode, "mq", "peek", f"{tree}/jobs", f"{tree}/j") == []
    assert complete(mode, "mq", "top", "--sort=rate", f"{tree}/images", f"{tree}/j") == []
    assert complete(mode, "mq", "send", f"{tree}/jobs", f"{tree}/j") == []


@pytest.mark.parametrize("mode", MODES)
def test_completes_a_command_line_after_work(mode, tree):
    assert "echo" in complete(mode, "mq", "work", "-j", "4", f"{tree}/jobs", "--", "ech")
    assert "echo" in complete(mode, "mq", "work", f"{tree}/jobs", "ech")
    assert complete(mode, "mq", "work", f"{tree}/jobs", "--", "cat", f"{tree}/images/") \
        == [f"{tree}/images/big"]
    assert "echo" in complete(mode, "mq", "work", "--jobs", "2", "--", f"{tree}/jobs", "ech")
    assert "--" in complete(mode, "mq", "work", f"{tree}/jobs", "--")
