"""The fleet under hostile fleet.toml values: nothing from the file is ever run by a shell.

``fleet.toml`` is validated before any host is contacted (hosts are IP addresses or host names, names
are identifiers, users are POSIX user names, dates are dates, paths and commands hold no newlines),
and what may legitimately hold shell syntax — a workdir or interpreter path with spaces, quotes,
``$(…)`` or backticks, a reset command — is carried through quoted: against real sshd processes
(tests/sshd.py) a fleet whose paths are full of ``$(touch CANARY)``, backticks and ``;`` comes up,
answers and goes down, and no canary file is ever created. Systemd units are checked as text (the
test hosts have no systemd). ``down`` looks only for this fleet's own processes.
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
import time
from datetime import date
from pathlib import Path

import pytest

from heqis.errors import HeqisError
from tests.runtime_helpers import free_ports
from tests.sshd import RUN_AS, SSHHost
from tests.test_fleet import PYTHON, gateway_signals, hosts, wheelhouse_env  # noqa: F401 (fixtures)


def toml_str(value: str) -> str:
    return json.dumps(value)          # a JSON string is a TOML basic string


def evil(canaries: Path, tag: str) -> str:
    """Shell syntax that creates a canary file wherever a shell reads it unquoted."""
    c = canaries
    return (f'$(touch {c}/{tag}-dollar) `touch {c}/{tag}-backtick` ; touch {c}/{tag}-semicolon ; '
            f'"dq" \'sq\' && touch {c}/{tag}-and')


# -- validation: refused with one line naming the key ------------------------------------------------------------

HEAD = '[fleet]\nname = "lab"\n'
GW = '[[hosts]]\nname = "rk"\nrole = "gateway"\nhost = "192.0.2.10"\nuser = "heqis"\n'
BRAIN = '[[hosts]]\nname = "orin"\nrole = "brain"\nhost = "192.0.2.11"\nuser = "heqis"\n'
INJECT = ["x; touch /tmp/heqis-canary", "$(touch /tmp/heqis-canary)", "`touch /tmp/heqis-canary`", "a\nb",
          "a'b", 'a"b']


def refused(tmp_path: Path, text: str, key: str) -> str:
    (tmp_path / "fleet.toml").write_text(text)
    from heqis_remote.fleet import load_fleet

    with pytest.raises(HeqisError) as info:
        load_fleet(tmp_path / "fleet.toml")
    message = info.value.message
    assert f"fleet.toml: {key}: " in message, message
    assert "\n" not in message
    return message


def brain_with(key: str, value: str) -> str:
    return HEAD + GW + BRAIN + f"{key} = {toml_str(value)}\n"


@pytest.mark.parametrize("value", [*INJECT, "-oProxyCommand=touch", "a b", "h_st", "-lead", "trail-", ""])
def test_host_must_be_an_address_or_host_name(tmp_path, value):
    text = HEAD + GW + BRAIN.replace('host = "192.0.2.11"', f"host = {toml_str(value)}")
    refused(tmp_path, text, "hosts[1].host")


@pytest.mark.parametrize("value", [*INJECT, "-oProxyCommand", "a b", "x" * 33])
def test_user_and_run_as_are_posix_user_names(tmp_path, value):
    refused(tmp_path, HEAD + GW + BRAIN.replace('user = "heqis"', f"user = {toml_str(value)}"), "hosts[1].user")
    refused(tmp_path, HEAD + GW + BRAIN.replace('user = "heqis"', 'user = "root"') +
            f"run_as = {toml_str(value)}\n", "hosts[1].run_as")


@pytest.mark.parametrize("value", [*INJECT, "-x", "a b"])
def test_names_are_identifiers(tmp_path, value):
    refused(tmp_path, HEAD.replace('"lab"', toml_str(value)) + GW + BRAIN, "fleet.name")
    refused(tmp_path, HEAD + GW + BRAIN.replace('name = "orin"', f"name = {toml_str(value)}"), "hosts[1].name")


@pytest.mark.parametrize("value", ["2024-11-01; touch /tmp/heqis-canary", "$(date)", "2024-13-01", "01/11/2024",
                                   "2024-11-01\n", "tomorrow"])
def test_replay_start_is_a_date(tmp_path, value):
    refused(tmp_path, HEAD + f"replay_start = {toml_str(value)}\n" + GW + BRAIN, "fleet.replay_start")


@pytest.mark.parametrize("value", [*INJECT[:3], "py\nthon", "python3 -c x", "py thon", "bin/python3"])
def test_python_is_a_path_or_a_command_name(tmp_path, value):
    refused(tmp_path, brain_with("python", value), "hosts[1].python")


@pytest.mark.parametrize("value", ["/srv/a\nb", "/srv/a\0b", "~root/heqis", "/", "~/", "a\rb"])
def test_workdir_is_a_path_without_control_characters(tmp_path, value):
    refused(tmp_path, brain_with("workdir", value), "hosts[1].workdir")


@pytest.mark.parametrize("value", ["true\ntouch /tmp/heqis-canary", "true\0x", 'true "unclosed', "  "])
def test_reset_command_is_one_splittable_command_line(tmp_path, value):
    refused(tmp_path, brain_with("reset_command", value), "hosts[1].reset_command")


def test_fleet_processes_never_run_as_root(tmp_path):
    message = refused(tmp_path, HEAD + GW.replace('user = "heqis"', 'user = "root"') + BRAIN, "hosts[0].run_as")
    assert "never run as root" in message and "SSH user is root" in message
    refused(tmp_path, HEAD + GW + BRAIN + 'run_as = "root"\n', "hosts[1].run_as")
    message = refused(tmp_path, HEAD + GW + BRAIN + 'run_as = "other"\n', "hosts[1].run_as")
    assert "needs the SSH user to be root" in message
    refused(tmp_path, HEAD + GW + BRAIN + 'backend = "onnxruntime; touch x"\n', "hosts[1].backend")


def test_legitimate_values_are_kept_as_written(tmp_path):
    from heqis_remote.fleet import load_fleet

    weird = "/srv/my heqis/$(not run) `nor this`; 'q' \"dq\""
    (tmp_path / "fleet.toml").write_text(
        HEAD + "replay_start = 2024-11-01\n" + GW.replace('user = "heqis"', 'user = "root"\nrun_as = "heqis"')
        + BRAIN.replace('"192.0.2.11"', '"orin-1.lab.example"') + f"workdir = {toml_str(weird)}\n"
        + 'reset_command = "ssh heqis@192.0.2.11 \'sudo systemctl reboot; echo $(date)\'"\n'
        + BRAIN.replace('"orin"', '"orin-2"').replace('"192.0.2.11"', '"2001:db8::11"')
        + 'python = "~/py/bin/python3"\n')
    cfg = load_fleet(tmp_path / "fleet.toml")
    assert cfg.fleet.replay_start == date(2024, 11, 1)
    assert cfg.gateway.run_user == "heqis" and cfg.brains[0].run_user == "heqis"
    assert cfg.brains[0].workdir == weird and cfg.brains[1].host == "2001:db8::11"
    (tmp_path / "fleet.toml").write_text(HEAD + 'replay_start = "20241101"\n' + GW + BRAIN)
    assert load_fleet(tmp_path / "fleet.toml").fleet.replay_start == date(2024, 11, 1)


# -- commands and units, as text ---------------------------------------------------------------------------------

def systemd_words(line: str) -> list[str]:
    """ExecStart= words the way systemd reads them (quotes, C escapes, then %% and $$), for the round trip."""
    line = line.replace("%%", "\0pct\0")
    words, i = [], 0
    while i < len(line):
        if line[i] == " ":
            i += 1
            continue
        word = ""
        if line[i] == '"':
            i += 1
            while line[i] != '"':
                if line[i] == "\\":
                    nxt = line[i + 1]
                    if nxt == "x":
                        word += chr(int(line[i + 2:i + 4], 16))
                        i += 4
                        continue
                    word += {"n": "\n", "t": "\t"}.get(nxt, nxt)
                    i += 2
                    continue
                word += line[i]
                i += 1
            i += 1
        else:
            while i < len(line) and line[i] != " ":
                assert line[i] not in "\"'\\;", line          # only plain words go unquoted
                word += line[i]
                i += 1
        words.append(word.replace("\0pct\0", "%").replace("$$", "$"))
    return words


HOSTILE_ARGS = ["plain", "", ";", "a b", "$(touch /tmp/x)", "`id`", "100%", "${HOME}", 'say "hi"', "back\\slash",
                "new\nline", "tab\there", "it's", "\x01"]


def test_systemd_quote_round_trips_every_argument():
    from heqis_remote.deploy import systemd_exec, systemd_quote

    argv = ["/srv/heqis/venv/bin/heqis", *HOSTILE_ARGS]
    line = systemd_exec(argv)
    assert "\n" not in line and systemd_words(line) == argv
    assert systemd_quote("plain") == "plain" and systemd_quote(";") == '";"'
    assert systemd_quote("$(id) 100%") == '"$$(id) 100%%"' and systemd_quote("a$b") == '"a$$b"'
    assert systemd_quote('x"y\\z') == '"x\\"y\\\\z"'
    with pytest.raises(HeqisError, match="absolute path"):
        systemd_exec(["heqis", "brain"])


def fleet_for_text(tmp_path: Path, workdir: str, reset: str):
    from heqis_remote.fleet import load_fleet

    (tmp_path / "fleet.toml").write_text(
        HEAD + 'replay_start = "20241101"\n' + GW + f"workdir = {toml_str(workdir)}\n" + BRAIN
        + f"workdir = {toml_str(workdir)}\nreset_command = {toml_str(reset)}\n")
    return load_fleet(tmp_path / "fleet.toml")


def test_unit_and_node_command_carry_hostile_values_as_single_words(tmp_path):
    from heqis_remote.deploy import node_argv, node_command, start_script, systemd_unit

    wd = "/srv/h q/$(touch /tmp/c1) `touch /tmp/c2`; 'x' \"y\" 100%"
    reset = "ssh heqis@192.0.2.11 'sudo reboot; $(touch /tmp/c3)'"
    cfg = fleet_for_text(tmp_path, wd, reset)
    venv = f"{wd}/venvs/0123456789abcdef"
    argv = node_argv(cfg, cfg.gateway, venv, wd)
    assert f"orin={reset}" in argv and f"{wd}/current/artifacts" in argv
    assert argv[argv.index("--start") + 1] == "2024-11-01"
    assert subprocess.run(["bash", "-c", 'printf "%s\\0" "$@"', "-", *argv], capture_output=True).stdout \
        .decode().split("\0")[:-1] == argv                              # sanity of the harness
    assert [*map(str, __import__("shlex").split(node_command(cfg, cfg.gateway, venv, wd)))] == argv
    unit = systemd_unit("orin", node_argv(cfg, cfg.brains[0], venv, wd), wd, "heqis")
    lines = unit.splitlines()
    assert "User=heqis" in lines
    assert "WorkingDirectory=/srv/h q/$(touch /tmp/c1) `touch /tmp/c2`; 'x' \"y\" 100%%/data" in lines
    exec_line = next(x for x in lines if x.startswith("ExecStart="))
    assert systemd_words(exec_line.removeprefix("ExecStart=")) == node_argv(cfg, cfg.brains[0], venv, wd)
    script = start_script("orin", "", "0123456789abcdef", wd, True, unit_tmp=f"{wd}/run/.heqis-orin.service.tmp")
    assert "<<" not in script and "ExecStart" not in script and "install -m 644" in script
    assert 'Environment="NUMBA_CACHE_DIR=/a b/%%x$y"' in systemd_unit("orin", ["/x/py"], "/srv", "heqis",
                                                                      ["NUMBA_CACHE_DIR=/a b/%x$y"])
    with pytest.raises(HeqisError, match="never run as root"):
        systemd_unit("orin", ["/x/heqis"], "/srv", "root")


def test_scripts_run_by_bash_create_no_canary(tmp_path):
    """start/stop scripts with a hostile workdir, run by a real bash: the folder is made literally."""
    from heqis_remote.deploy import start_script, stop_script

    canaries = tmp_path / "canaries"
    canaries.mkdir()
    wd = str(tmp_path / f"wd {evil(canaries, 'wd')}")
    Path(wd).mkdir(parents=True)                                       # made by earlier steps in a deploy
    command = __import__("shlex").join(["sleep", "30"])
    out = subprocess.run(["bash", "-c", start_script("b1", command, "0123456789abcdef", wd, False)],
                         capture_output=True, text=True, timeout=60)
    assert "started" in out.stdout, out.stderr
    pid = int((Path(wd) / "run" / "b1.pid").read_text())
    assert (Path(wd) / "run" / "b1.release").read_text().strip() == "0123456789abcdef"
    subprocess.run(["bash", "-c", stop_script("b1", wd, False, 5)], check=True, timeout=60)
    assert not (Path(wd) / "run" / "b1.pid").exists()
    with pytest.raises(ProcessLookupError):
        __import__("os").kill(pid, 0)
    assert list(canaries.iterdir()) == []


# -- against real sshd: a hostile but valid fleet comes up, and nothing runs ------------------------------------

def hostile_fleet(path: Path, root: Path, known: Path, gw: SSHHost, b1: SSHHost, artifacts: Path, data: Path,
                  canaries: Path) -> Path:
    base = free_ports(8)
    blocks = []
    for name, role, h, extra in (("gw", "gateway", gw, ""),
                                 ("brain-1", "brain", b1, f"brain_port = {base + 4}\nreset_command = "
                                  f"{toml_str(f'true {chr(34)}$(touch {canaries}/reset){chr(34)} x;y')}\n")):
        wd = h.workdir / f"wd {evil(canaries, name + '-wd')}"
        py = h.workdir / f"py {evil(canaries, name + '-py')}"
        py.mkdir(parents=True, exist_ok=True)
        if not (py / "python3").exists():
            (py / "python3").symlink_to(PYTHON)
        blocks.append(f"""
[[hosts]]
name = "{name}"
role = "{role}"
host = "127.0.0.1"
user = "root"
run_as = "{RUN_AS}"
port = {h.port}
workdir = {toml_str(str(wd))}
python = {toml_str(str(py / 'python3'))}
identity_file = {toml_str(str(root / 'id_ed25519'))}
systemd = "no"
{extra}""")
    path.write_text(textwrap.dedent(f"""
    [fleet]
    name = "hostile"
    artifacts = {toml_str(str(artifacts))}
    data_dir = {toml_str(str(data))}
    known_hosts = {toml_str(str(known))}
    replay_start = "20241101"
    telemetry_port = {base}
    control_port = {base + 1}
    ws_port = 0
    connect_timeout_s = 5
    ready_timeout_s = 120
    """) + "".join(blocks))
    return path


@pytest.mark.slow
def test_hostile_paths_come_up_quoted_over_real_sshd(hosts, artifacts, sample_store, tmp_path, isolated):  # noqa: F811
    from heqis_remote.deploy import down_fleet, status_fleet, up_fleet
    from heqis_remote.fleet import load_fleet

    root, started, known = hosts
    gw, b1 = started[0], started[1]
    canaries = gw.workdir / "canaries"       # where RUN_AS could write too: a shell as either user would leave a file
    canaries.mkdir(exist_ok=True)
    canaries.chmod(0o777)
    cfg = load_fleet(hostile_fleet(tmp_path / "fleet.toml", root, known, gw, b1, artifacts, sample_store.root,
                                   canaries))
    try:
        up = up_fleet(cfg)
        assert up.ok, (up.to_dict(), {h.name: node_log(h.workdir, h.name) for h in cfg.hosts})
        wd = Path(cfg.gateway.workdir)
        assert (wd / "current" / "artifacts" / "manifest.json").exists()          # the folder, literally
        deadline = time.monotonic() + 60
        signals = wd / "data" / "signals.sqlite"
        while time.monotonic() < deadline and not (signals.exists() and gateway_signals_at(signals) >= 20):
            time.sleep(0.5)
        assert gateway_signals_at(signals) >= 20, "signals did not flow"
        # the processes run as RUN_AS, never root
        for h in cfg.hosts:
            pid = int((Path(h.workdir) / "run" / f"{h.name}.pid").read_text())
            owner = subprocess.run(["ps", "-o", "user=", "-p", str(pid)], capture_output=True, text=True).stdout
            assert owner.strip() == RUN_AS
        doc = status_fleet(cfg)
        assert all(n["alive"] and n["process_alive"] for n in doc["nodes"]), doc
    finally:
        stopped = down_fleet(cfg)
    assert all(r["stopped"] for r in stopped), stopped
    assert list(canaries.iterdir()) == [], "a value from fleet.toml was run by a shell"


def node_log(workdir: str, name: str) -> str:
    log = Path(workdir) / "logs" / f"{name}.log"
    return log.read_text(errors="replace")[-1500:] if log.exists() else "(no log)"


def gateway_signals_at(db: Path) -> int:
    import sqlite3

    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        return int(c.execute("SELECT COUNT(*) FROM signals").fetchone()[0])


# -- down: only this fleet's processes count as leftovers -------------------------------------------------------

def fake_process(title: str) -> subprocess.Popen:
    """A sleep whose command line reads ``title`` (what pgrep -f sees)."""
    return subprocess.Popen(["bash", "-c", 'exec -a "$0" sleep 120', title])


def test_down_reports_only_this_fleets_leftovers(hosts, artifacts, sample_store, tmp_path):  # noqa: F811
    from heqis_remote.deploy import down_fleet
    from heqis_remote.fleet import load_fleet
    from tests.test_fleet import write_fleet

    root, started, known = hosts
    cfg = load_fleet(write_fleet(tmp_path / "fleet.toml", root, known, started, artifacts, sample_store.root))
    b1_wd = cfg.host("brain-1").workdir
    others = [fake_process("heqis brain --port 1 --name brain-1"),            # another fleet's brain-1 …
              fake_process(f"{tmp_path}/other/venvs/0123456789abcdef/bin/heqis brain --port 1 --name brain-1"),
              fake_process(f"{tmp_path}/other/venvs/0123456789abcdef/bin/heqis gateway --fleet looptest"),
              fake_process(f"{b1_wd}/venvs/0123456789abcdef/bin/heqis brain --port 1 --name brain-10")]
    mine = None
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(_title_set(p) for p in others):
            time.sleep(0.05)
        stopped = down_fleet(cfg, timeout_s=2)
        assert all(r["stopped"] for r in stopped), stopped
        assert all(p.poll() is None for p in others), "down must not touch other fleets' processes"
        mine = fake_process(f"{b1_wd}/venvs/0123456789abcdef/bin/python -m heqis brain --port 1 --name brain-1")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _title_set(mine):
            time.sleep(0.05)
        by_name = {r["name"]: r["stopped"] for r in down_fleet(cfg, timeout_s=2)}
        assert by_name == {"gw": True, "brain-1": False, "brain-2": True}, by_name
    finally:
        for p in [*others, *([mine] if mine else [])]:
            p.kill()
            p.wait(5)


def _title_set(p: subprocess.Popen) -> bool:
    try:
        return "heqis" in Path(f"/proc/{p.pid}/cmdline").read_text()
    except OSError:
        return False


def test_process_pattern_is_scoped_to_the_workdir(tmp_path):
    from heqis_remote.deploy import ere, expand, process_pattern

    cfg = fleet_for_text(tmp_path, "~/heqis (lab)", "true")
    wd = expand(cfg.brains[0].workdir, "/home/heqis")
    assert wd == "/home/heqis/heqis (lab)" and expand("rel/wd", "/home/u/") == "/home/u/rel/wd"
    pattern = process_pattern(cfg, cfg.brains[0], wd)
    assert re.search(pattern, "/home/heqis/heqis (lab)/venvs/0123456789abcdef/bin/python "
                              "/home/heqis/heqis (lab)/venvs/0123456789abcdef/bin/heqis brain --port 5555 --name orin")
    assert re.search(pattern, "/home/heqis/heqis (lab)/venvs/0123456789abcdef/bin/python -m heqis brain --name orin")
    assert not re.search(pattern, "/other/venvs/0123456789abcdef/bin/heqis brain --name orin")
    assert not re.search(pattern, "/home/heqis/heqis (lab)/venvs/0123456789abcdef/bin/heqis brain --name orin-2")
    assert ere("a.b(c)") == "a\\.b\\(c\\)"
