"""The SSH fleet against real sshd processes on loopback: up, idempotence, rollback, status, down.

Three test hosts (one gateway, two brains), each its own sshd with its own host key and its own
work directory; the hosts install heqis from the shipped wheelhouse with the package index made
unreachable. The SSH user is root, the processes run as ``run_as = RUN_AS`` (never root). Nothing
here targets an address outside loopback.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from heqis.errors import HeqisError
from tests.runtime_helpers import free_ports
from tests.sshd import RUN_AS, SSHHost, host_python, keygen, require_sshd, start_sshd

REPO = Path(__file__).resolve().parents[1]
PYTHON = host_python() or str(Path(sys.base_prefix) / "bin" / "python3")


@pytest.fixture(scope="module")
def wheelhouse_env():
    old = os.environ.get("HEQIS_WHEELHOUSE")
    os.environ.setdefault("HEQIS_WHEELHOUSE", str(REPO / ".heqis" / "wheelhouse"))
    yield
    if old is None:
        os.environ.pop("HEQIS_WHEELHOUSE", None)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory, wheelhouse_env):
    require_sshd()
    root = tmp_path_factory.mktemp("fleet")
    keygen(root / "id_ed25519")
    started = [start_sshd(root, name, root / "id_ed25519.pub") for name in ("gw", "b1", "b2")]
    known = root / "known_hosts"
    known.write_text("\n".join(h.known_hosts_line() for h in started) + "\n")
    yield root, started, known
    for h in started:
        h.cleanup()


def host_toml(name: str, role: str, port: int, workdir: Path, root: Path, extra: str = "") -> str:
    """One [[hosts]] entry for a loopback test host."""
    return f"""
[[hosts]]
name = "{name}"
role = "{role}"
host = "127.0.0.1"
user = "root"
run_as = "{RUN_AS}"
port = {port}
workdir = "{workdir}"
python = "{PYTHON}"
identity_file = "{root / 'id_ed25519'}"
{extra}"""


def write_fleet(path: Path, root: Path, known: Path, hosts: list[SSHHost], artifacts: Path, data: Path,
                extra_host: str = "", keys: Path | None = None) -> Path:
    base = free_ports(8)
    gw, *brains = hosts
    blocks = [host_toml("gw", "gateway", gw.port, gw.workdir, root)]
    for i, b in enumerate(brains):
        blocks.append(host_toml(f"brain-{i + 1}", "brain", b.port, b.workdir, root,
                                f'brain_port = {base + 4 + 2 * i}\nreset_command = "true"\n'))
    path.write_text(textwrap.dedent(f"""
    [fleet]
    name = "looptest"
    artifacts = "{artifacts}"
    data_dir = "{data}"
    known_hosts = "{known}"
    replay_start = "2024-11-01"
    telemetry_port = {base}
    control_port = {base + 1}
    ws_port = 0
    connect_timeout_s = 5
    ready_timeout_s = 120
    """) + (f'keys = "{keys}"\n' if keys else "") + "".join(blocks) + extra_host)
    return path


def gateway_signals(gw: SSHHost) -> int:
    db = gw.workdir / "data" / "signals.sqlite"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as c:
        return int(c.execute("SELECT COUNT(*) FROM signals").fetchone()[0])


def fleet_pids(hosts: list[SSHHost]) -> list[int]:
    """The pids this test's hosts recorded for their processes (never a host-wide search: other fleets may
    run brains of the same names on this machine)."""
    return [int(p.read_text()) for h in hosts for p in (h.workdir / "run").glob("*.pid") if p.read_text().strip()]


@pytest.mark.slow
def test_up_idempotent_rollback_status_logs_down(hosts, artifacts, sample_store, tiny_run, tmp_path, isolated):
    from heqis.export.onnx_export import export_run
    from heqis.runtime.security import generate_keys
    from heqis_remote.deploy import down_fleet, logs_fleet, rollback_fleet, status_fleet, up_fleet
    from heqis_remote.fleet import load_fleet

    root, started, known = hosts
    gw = started[0]
    keys = tmp_path / "keys"                 # CURVE on every link, each host given only what its role needs
    generate_keys(keys)
    cfg = load_fleet(write_fleet(tmp_path / "fleet.toml", root, known, started, artifacts, sample_store.root,
                                 keys=keys))
    try:
        first = up_fleet(cfg)
        assert first.ok, first.to_dict()
        assert all(h.uploaded > 0 for h in first.hosts) and all(h.started == [h.host] for h in first.hosts)
        assert {n["name"] for n in first.status["nodes"] if n["alive"]} >= {"brain-1", "brain-2"}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and gateway_signals(gw) < 100:
            time.sleep(0.5)
        assert gateway_signals(gw) >= 100, "signals did not flow end to end"
        shipped = {h.name: sorted(str(p.relative_to(h.workdir / "secrets" / "keys"))
                                  for p in (h.workdir / "secrets" / "keys").rglob("*") if p.is_file())
                   for h in started}
        assert shipped["gw"] == ["allow/gateway/console.key", "brain.key", "gateway.key", "gateway.key_secret",
                                 "roles.json", "ws.token"]
        assert shipped["b1"] == ["allow/brain/gateway.key", "brain.key", "brain.key_secret", "gateway.key"]
        # the hosts' venvs hold no research packages: heqis[edge] only, installed offline
        for h in started:
            venv = next((h.workdir / "venvs").iterdir())
            listing = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
                                     capture_output=True, text=True).stdout.lower()
            assert "onnxruntime" in listing and "torch" not in listing and "pandas" not in listing

        second = up_fleet(cfg)
        assert second.ok
        assert [h.uploaded for h in second.hosts] == [0, 0, 0], "a second up must upload nothing"
        assert [h.started for h in second.hosts] == [[], [], []], "and restart nothing"
        assert [h.release for h in second.hosts] == [h.release for h in first.hosts]

        # new artifacts (one generator only) → a new release; then --rollback restores the previous one
        fewer = tmp_path / "deploy_g1"
        export_run(tiny_run, ["G1"], out=fewer)
        cfg.fleet.artifacts = fewer
        third = up_fleet(cfg)
        assert third.ok and all(h.release != f.release for h, f in zip(third.hosts, first.hosts, strict=True))
        assert json.loads((gw.workdir / "current" / "artifacts" / "manifest.json").read_text())["generators"].keys() \
            == {"G1"}
        back = rollback_fleet(cfg)
        assert back.ok and [h.release for h in back.hosts] == [h.release for h in first.hosts]
        assert len(json.loads((gw.workdir / "current" / "artifacts" / "manifest.json").read_text())["generators"]) == 4

        doc = status_fleet(cfg)
        assert doc["fleet"] == "looptest" and [n["role"] for n in doc["nodes"]] == ["gateway", "brain", "brain"]
        for node in doc["nodes"]:
            assert node["reachable"] and node["process_alive"] and node["alive"]
            assert {"name", "role", "host", "pid", "alive", "heartbeat_age_s", "version", "artifacts_sha256",
                    "counters"} <= set(node)
        assert "brain brain-1 ready" in logs_fleet(cfg, "brain-1", 200)
    finally:
        pids = fleet_pids(started)
        stopped = down_fleet(cfg)
    assert all(r["stopped"] for r in stopped), stopped
    assert len(pids) == 3 and not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() !=
                                   psutil.STATUS_ZOMBIE]


def test_unknown_host_key_is_refused(hosts, artifacts, sample_store, tmp_path):
    from heqis_remote.deploy import connect
    from heqis_remote.fleet import load_fleet

    root, started, _known = hosts
    partial = tmp_path / "known_hosts"
    partial.write_text(started[1].known_hosts_line() + "\n")            # knows b1 only
    cfg = load_fleet(write_fleet(tmp_path / "fleet.toml", root, partial, started, artifacts, sample_store.root))
    with pytest.raises(HeqisError, match="refused") as info:
        connect(cfg, cfg.gateway)
    assert "host key" in (info.value.hint or "")
    connect(cfg, cfg.host("brain-1")).close()                             # the known one connects
    wrong = tmp_path / "wrong_known_hosts"                                # a changed key is refused too
    wrong.write_text(f"[127.0.0.1]:{started[0].port} {started[1].host_pub}\n")
    cfg.fleet.known_hosts = wrong
    with pytest.raises(HeqisError, match="refused"):
        connect(cfg, cfg.gateway)


@pytest.mark.slow
def test_a_host_that_is_down_is_reported_while_the_others_come_up(hosts, artifacts, sample_store, tmp_path,
                                                                   isolated):
    from heqis_remote.deploy import down_fleet, up_fleet
    from heqis_remote.fleet import load_fleet

    root, started, known = hosts
    dead_port = free_ports(1)
    ghost = host_toml("brain-ghost", "brain", dead_port, tmp_path / "ghost", root, f"brain_port = {free_ports(2)}\n")
    cfg = load_fleet(write_fleet(tmp_path / "fleet.toml", root, known, started, artifacts, sample_store.root, ghost))
    try:
        result = up_fleet(cfg)
        by_host = {h.host: h for h in result.hosts}
        assert not result.ok
        assert by_host["brain-ghost"].step == "connect" and "cannot reach" in by_host["brain-ghost"].error
        assert all(by_host[n].ok for n in ("gw", "brain-1", "brain-2"))
        assert result.status is not None      # the gateway still reports its live brains
        alive = {n["name"] for n in result.status["nodes"] if n["alive"]}
        assert {"brain-1", "brain-2"} <= alive and "brain-ghost" not in alive
    finally:
        stopped = down_fleet(cfg)
    assert next(r for r in stopped if r["name"] == "brain-ghost")["reachable"] is False


def test_fleet_toml_errors_name_the_key(tmp_path):
    from heqis_remote.fleet import load_fleet

    def check(text: str, message: str) -> None:
        (tmp_path / "fleet.toml").write_text(text)
        with pytest.raises(HeqisError, match=message):
            load_fleet(tmp_path / "fleet.toml")

    head = '[fleet]\nname = "lab"\n'
    gw = '[[hosts]]\nname = "rk"\nrole = "gateway"\nhost = "192.0.2.10"\nuser = "heqis"\n'
    check(head + gw + '[[hosts]]\nname = "orin"\nrole = "brian"\nhost = "h"\nuser = "u"\n',
          r"hosts\[1\]\.role: Input should be 'gateway' or 'brain'")
    check(head + gw, 'at least one host must have role = "brain"')
    check(head + gw + '[[hosts]]\nname = "orin"\nrole = "brain"\nhost = "h"\nuser = "u"\nport = 70000\n',
          r"hosts\[1\]\.port: Input should be less than or equal to 65535")
    check(head + gw.replace('user = "heqis"\n', ""), r"hosts\[0\]\.user: Field required")
    check('[fleet]\nname = "lab"\ncolour = "red"\n' + gw, r"fleet\.colour: Extra inputs are not permitted")
    check("not toml [", "not valid TOML")
    check('[fleet]\nname = "lab"\nwatchdog = "block"\n' + gw,
          r"fleet\.watchdog: Input should be 'warn', 'hold' or 'off'")


def test_the_fleet_gateway_runs_the_watchdog_policy_fleet_toml_names(tmp_path):
    from heqis_remote.deploy import node_argv
    from heqis_remote.fleet import load_fleet

    gw = '[[hosts]]\nname = "rk"\nrole = "gateway"\nhost = "192.0.2.10"\nuser = "heqis"\n'
    brain = '[[hosts]]\nname = "orin"\nrole = "brain"\nhost = "192.0.2.11"\nuser = "heqis"\n'
    for line, policy in (("", "warn"), ('watchdog = "hold"\n', "hold"), ('watchdog = "off"\n', "off")):
        (tmp_path / "fleet.toml").write_text('[fleet]\nname = "lab"\n' + line + gw + brain)
        cfg = load_fleet(tmp_path / "fleet.toml")
        argv = node_argv(cfg, cfg.gateway, "/srv/heqis/venvs/x", "/srv/heqis")
        assert argv[argv.index("--watchdog") + 1] == policy
        assert "--watchdog" not in node_argv(cfg, cfg.brains[0], "/srv/heqis/venvs/x", "/srv/heqis")


def test_start_and_stop_scripts_and_systemd_unit():
    from heqis_remote.deploy import start_script, stop_script, systemd_unit

    unit = systemd_unit("orin-1", ["/srv/heqis/venv/bin/heqis", "brain", "--port", "5555"], "/srv/heqis", "heqis")
    assert "Restart=always" in unit and "WantedBy=multi-user.target" in unit and "User=heqis" in unit
    assert "ExecStart=/srv/heqis/venv/bin/heqis brain --port 5555\n" in unit
    assert "WorkingDirectory=/srv/heqis/data\n" in unit
    script = start_script("orin-1", "heqis brain", "abc123", "/srv/heqis", use_systemd=False)
    assert "setsid nohup heqis brain" in script and "echo abc123 > /srv/heqis/run/orin-1.release" in script
    systemd = start_script("orin-1", "", "abc", "/srv", use_systemd=True, unit_tmp="/srv/run/.unit.tmp")
    assert "systemctl restart heqis-orin-1" in systemd
    assert "install -m 644 -o root -g root /srv/run/.unit.tmp /etc/systemd/system/heqis-orin-1.service" in systemd
    assert "<<" not in systemd and "cat >" not in systemd
    stop = stop_script("orin-1", "/srv/heqis", use_systemd=False, timeout_s=2)
    assert "kill -TERM" in stop and "kill -KILL" in stop and "seq 20" in stop
