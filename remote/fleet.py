"""``fleet.toml``: the fleet, validated with pydantic; errors name the key and what is wrong.

::

    [fleet]
    name = "lab"
    artifacts = "deploy_output"
    known_hosts = "~/.ssh/known_hosts"

    [[hosts]]
    name = "rk3568"
    role = "gateway"
    host = "192.0.2.10"
    user = "heqis"

    [[hosts]]
    name = "orin-1"
    role = "brain"
    host = "192.0.2.11"
    user = "heqis"
    backend = "tensorrt"
    brain_port = 5555
    reset_command = "ssh heqis@192.0.2.11 sudo systemctl reboot"
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from heqis.errors import HeqisError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class FleetSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    artifacts: Path = Path("deploy_output")
    known_hosts: Path = Path("~/.ssh/known_hosts")
    data_dir: Path = Path("heqis-data")          # where the gateway's replay pack is made from
    keys: Path | None = None                     # CURVE key folder (heqis keys) to ship; None = plain TCP
    insecure: bool = False                       # allow plain TCP beyond loopback (not recommended)
    replay_start: str | None = None
    replay_rate: float = Field(0.0, ge=0)
    telemetry_port: int = Field(5560, ge=1, le=65535)
    control_port: int = Field(5561, ge=1, le=65535)
    ws_port: int = Field(8765, ge=0, le=65535)
    connect_timeout_s: float = Field(10.0, gt=0)
    command_timeout_s: float = Field(900.0, gt=0)
    ready_timeout_s: float = Field(120.0, gt=0)


class HostSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    role: Literal["gateway", "brain"]
    host: str = Field(min_length=1)
    user: str = Field(min_length=1)
    port: int = Field(22, ge=1, le=65535)
    workdir: str = "~/heqis"
    python: str = "python3"                      # the host's interpreter (3.10 on JetPack 6 / Ubuntu 22.04)
    identity_file: Path | None = None
    backend: Literal["onnxruntime", "tensorrt", "rknn", "torch"] = "onnxruntime"
    precision: Literal["fp32", "fp16", "int8"] = "fp16"
    brain_port: int = Field(5555, ge=1, le=65534)
    reset_command: str | None = None
    systemd: Literal["auto", "yes", "no"] = "auto"


class FleetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fleet: FleetSection
    hosts: list[HostSpec]

    @model_validator(mode="after")
    def one_gateway_some_brains(self) -> FleetConfig:
        roles = [h.role for h in self.hosts]
        if roles.count("gateway") != 1:
            raise ValueError(f"exactly one host must have role = \"gateway\" (found {roles.count('gateway')})")
        if "brain" not in roles:
            raise ValueError("at least one host must have role = \"brain\"")
        names = [h.name for h in self.hosts]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"host names must be unique (repeated: {', '.join(dup)})")
        return self

    @property
    def gateway(self) -> HostSpec:
        return next(h for h in self.hosts if h.role == "gateway")

    @property
    def brains(self) -> list[HostSpec]:
        return [h for h in self.hosts if h.role == "brain"]

    def host(self, name: str) -> HostSpec:
        found = next((h for h in self.hosts if h.name == name), None)
        if found is None:
            raise HeqisError(f"no host named '{name}' in the fleet",
                             hint=f"hosts: {', '.join(h.name for h in self.hosts)}")
        return found


def _loc(loc: tuple, doc: dict) -> str:
    parts = []
    for p in loc:
        if isinstance(p, int):
            parts[-1] = f"{parts[-1]}[{p}]" if parts else f"[{p}]"
        else:
            parts.append(str(p))
    return ".".join(parts)


def load_fleet(path: Path) -> FleetConfig:
    """Read and validate ``fleet.toml``; one-line errors name the key (``hosts[1].role``) and the problem."""
    path = Path(path)
    if not path.exists():
        raise HeqisError(f"{path}: fleet file not found", hint="write one (README, section Fleet) or use --local")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise HeqisError(f"{path}: not valid TOML ({exc})") from None
    try:
        cfg = FleetConfig.model_validate(doc)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = _loc(tuple(e["loc"]), doc) or "(top level)"
        value = f" (got {e['input']!r})" if e["type"] not in ("missing", "value_error") and "input" in e \
            and not isinstance(e["input"], dict) else ""
        raise HeqisError(f"{path}: {where}: {e['msg']}{value}", hint="see README, section Fleet") from None
    base = path.parent
    fleet = cfg.fleet
    for attr in ("artifacts", "data_dir", "keys"):
        value = getattr(fleet, attr)
        if value is not None and not Path(value).expanduser().is_absolute():
            setattr(fleet, attr, (base / value).resolve())
    fleet.known_hosts = Path(fleet.known_hosts).expanduser()
    if not fleet.known_hosts.is_absolute():
        fleet.known_hosts = (base / fleet.known_hosts).resolve()
    for h in cfg.hosts:
        if h.identity_file is not None:
            h.identity_file = Path(h.identity_file).expanduser()
            if not h.identity_file.is_absolute():
                h.identity_file = (base / h.identity_file).resolve()
    return cfg
