"""Bring-up time of 1 gateway + 2 brains on loopback SSH hosts: cold (first upload) and warm.

Starts three real sshd processes on loopback ports (root and openssh-server needed, as in CI),
writes a fleet.toml for them, and times ``heqis up`` twice: cold (empty hosts: upload wheels,
wheelhouse and artifacts, create venvs offline, start) and warm (nothing changed: uploads nothing,
restarts nothing). With ``--keep`` the hosts and the fleet stay up and the fleet.toml is printed,
so the README's fleet commands can be tried by hand (`heqis status --fleet …`, `heqis down --fleet …`).

    python benchmarks/fleet.py --artifacts heqis-demo/deploy_output --data-dir heqis-demo/data [--keep]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.sshd import keygen, skip_reason, start_sshd
from tests.test_fleet import write_fleet


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", type=Path, default=Path("heqis-demo/deploy_output"))
    ap.add_argument("--data-dir", type=Path, default=Path("heqis-demo/data"))
    ap.add_argument("--keep", action="store_true", help="leave hosts and fleet running")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    reason = skip_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    from heqis_remote.deploy import down_fleet, up_fleet
    from heqis_remote.fleet import load_fleet

    root = Path(tempfile.mkdtemp(prefix="heqis-fleet-bench-"))
    keygen(root / "id_ed25519")
    hosts = [start_sshd(root, name, root / "id_ed25519.pub") for name in ("gw", "b1", "b2")]
    known = root / "known_hosts"
    known.write_text("\n".join(h.known_hosts_line() for h in hosts) + "\n")
    fleet_file = write_fleet(root / "fleet.toml", root, known, hosts, args.artifacts.resolve(), args.data_dir.resolve())
    cfg = load_fleet(fleet_file)
    rows = []
    try:
        for label in ("cold", "warm"):
            t0 = time.monotonic()
            result = up_fleet(cfg)
            rows.append({"run": label, "seconds": round(time.monotonic() - t0, 2), "ok": result.ok,
                         "uploaded_files": sum(h.uploaded for h in result.hosts),
                         "uploaded_mb": round(sum(h.uploaded_bytes for h in result.hosts) / 2**20, 1),
                         "restarted": sum(len(h.started) for h in result.hosts)})
    finally:
        if not args.keep:
            down_fleet(cfg)
            for h in hosts:
                h.proc.terminate()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print("heqis up, 1 gateway + 2 brains on loopback sshd hosts")
        for r in rows:
            print(f"  {r['run']:<5} {r['seconds']:>7.1f} s · uploaded {r['uploaded_files']} files "
                  f"({r['uploaded_mb']} MB) · restarted {r['restarted']} · ok={r['ok']}")
    if args.keep:
        print(f"fleet left running: heqis status --fleet {fleet_file} / heqis down --fleet {fleet_file}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
