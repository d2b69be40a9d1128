"""Helpers for the runtime tests: free ports, real brain processes, a gateway in a thread, Modbus."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import zmq

from heqis.runtime.gateway import BrainTarget, Gateway, GatewayConfig
from heqis.runtime.ports import free_port_block
from heqis.runtime.sources import Aligner


def free_ports(count: int) -> int:
    return free_port_block(count)


def start_brain(artifacts: Path, port: int, name: str = "brain-1", log: Path | None = None,
                extra: list[str] | None = None) -> subprocess.Popen:
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    return subprocess.Popen([sys.executable, "-m", "heqis", "brain", "--port", str(port), "--artifacts",
                             str(artifacts), "--name", name, "--threads", "1", *(extra or [])],
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


class GatewayThread:
    """A Gateway running in a background thread of the test process."""

    def __init__(self, cfg: GatewayConfig, source: Aligner) -> None:
        self.gateway = Gateway(cfg, source)
        self.thread = threading.Thread(target=self.gateway.run, daemon=True)
        self.thread.start()

    def wait(self, predicate, timeout: float = 60.0, step: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.gateway):
                return True
            time.sleep(step)
        return False

    def stop(self) -> None:
        self.gateway.running = False
        self.thread.join(60)


def gateway_config(base: int, brains: list[BrainTarget], db: Path, **kw) -> GatewayConfig:
    return GatewayConfig(targets=brains, db=db, telemetry_port=base, control_port=base + 1, ws_port=0, **kw)


def wait_until(predicate, timeout: float = 30.0, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


@contextlib.contextmanager
def modbus_server(port: int, registers: int = 64) -> Iterator[None]:
    """A pymodbus TCP server on loopback with ``registers`` writable holding registers from address 0.

    Write bars into it the way a PLC would: a Modbus client's ``write_registers``."""
    from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
    from pymodbus.server import ModbusTcpServer

    block = ModbusSequentialDataBlock(1, [0] * registers)
    context = ModbusServerContext(devices=ModbusDeviceContext(hr=block), single=True)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, object] = {}

    async def main() -> None:
        server = ModbusTcpServer(context, address=("127.0.0.1", port))
        holder["server"] = server
        ready.set()
        await server.serve_forever()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    ready.wait(5)
    time.sleep(0.3)
    try:
        yield None
    finally:
        server = holder.get("server")
        if server is not None:
            asyncio.run_coroutine_threadsafe(server.shutdown(), loop).result(5)  # type: ignore[attr-defined]
        thread.join(5)


def subscribe(address: str, topic: bytes = b"") -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, topic)
    sock.connect(address)
    return sock
