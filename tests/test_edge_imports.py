"""What runs on an edge board imports no research library: the brain, and the gateway with replay + Modbus.

Both are started as real processes (through tests/module_probe.py), do real work — the brain answers,
the gateway replays a replay pack and reads Modbus registers, signals are stored — and are then asked
which modules they imported. import-linter checks the same statically (make lint); this checks it
for real, lazy imports included.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

from heqis.runtime.local_fleet import control
from heqis.runtime.replay_pack import store_arrays, write_pack
from heqis.runtime.sources import encode_registers
from tests.runtime_helpers import free_ports, modbus_server, wait_until

RESEARCH = ("pandas", "pyarrow", "torch", "textual", "fabric", "tushare", "optuna", "onnx", "exchange_calendars")
PROBE = Path(__file__).with_name("module_probe.py")


def probe(args: list[str], out: Path, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEQIS_")} | {"PROBE_OUT": str(out)}
    return subprocess.Popen([sys.executable, str(PROBE), *args], env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def modules_of(proc: subprocess.Popen, out: Path) -> list[str]:
    os.kill(proc.pid, signal.SIGUSR1)
    assert wait_until(out.exists, 60), "the process did not answer SIGUSR1"
    assert wait_until(lambda: out.stat().st_size > 0 and out.read_text().endswith("]"), 30)
    return json.loads(out.read_text())


def test_brain_and_gateway_with_replay_and_modbus_import_no_research_library(sample_store, artifacts, tmp_path):
    base = free_ports(8)
    pack = write_pack(store_arrays(sample_store.root, ["600519.SH", "000001.SZ"]), tmp_path / "replay.npz")
    brain = probe(["brain", "--port", str(base + 4), "--artifacts", str(artifacts), "--threads", "1"],
                  tmp_path / "brain.json", tmp_path / "brain.log")
    gateway = None
    try:
        with modbus_server(base + 3):
            from pymodbus.client import ModbusTcpClient

            plc = ModbusTcpClient("127.0.0.1", port=base + 3)
            assert plc.connect()
            last = sample_store.read_bars("600519.SH").iloc[-1]
            regs = encode_registers(1, date(2025, 1, 2), last["open_raw"], last["high_raw"] * 1.01, last["low_raw"],
                                    last["close_raw"] * 1.005, 30000, turnover=0.5)
            assert not plc.write_registers(0, regs, device_id=1).isError()
            plc.close()
            gateway = probe(["gateway", "--target", f"brain-1@127.0.0.1:{base + 4}", "--source", "replay",
                             "--source", "modbus", "--replay-pack", str(pack), "--start", "2024-12-01",
                             "--modbus", f"127.0.0.1:{base + 3}", "--modbus-map", "600519.SH@0",
                             "--poll-interval", "0.1", "--artifacts", str(artifacts), "--db",
                             str(tmp_path / "s.sqlite"), "--telemetry-port", str(base), "--control-port",
                             str(base + 1), "--ws-port", str(base + 2)], tmp_path / "gateway.json",
                            tmp_path / "gateway.log")

            def stored() -> int:
                doc = control(f"tcp://127.0.0.1:{base + 1}", {"cmd": "status"}, 1.0)
                return doc["nodes"][0]["counters"].get("signals", 0) if doc else 0

            assert wait_until(lambda: stored() > 10, 180), (tmp_path / "gateway.log").read_text()[-2000:]
            gw_modules = modules_of(gateway, tmp_path / "gateway.json")
            brain_modules = modules_of(brain, tmp_path / "brain.json")
    finally:
        for p in (gateway, brain):
            if p is not None:
                p.terminate()
                p.wait(30)
    for who, modules in (("brain", brain_modules), ("gateway", gw_modules)):
        roots = {m.split(".")[0] for m in modules}
        assert "heqis" in roots and "zmq" in roots, who
        assert not roots & set(RESEARCH), f"the {who} imported {sorted(roots & set(RESEARCH))}"
    assert "pymodbus" in {m.split(".")[0] for m in gw_modules}            # the Modbus source really ran
    assert "onnxruntime" in {m.split(".")[0] for m in brain_modules}     # and the brain really inferred
