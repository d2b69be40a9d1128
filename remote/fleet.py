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

Every string that reaches a remote command is checked here, before any host is contacted: ``host`` is
an IP address or an RFC 1123 host name, names are identifiers, ``user`` / ``run_as`` are POSIX user
names, dates are dates, paths hold no control characters, ``reset_command`` splits with shlex. The
deploy then quotes every part anyway (``remote/deploy.py``). Fleet processes never run as root:
``run_as`` (default: the SSH ``user``) must name another user.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from heqis.errors import HeqisError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
USER = re.compile(r"[A-Za-z_][A-Za-z0-9._-]{0,31}")          # POSIX portable user name (no leading '-')
LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
COMMAND_NAME = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9._+-]*")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_host(value: str) -> str:
    """An IP address (v4 or v6) or an RFC 1123 host name; never anything a shell could read as syntax."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    labels = value.split(".")
    if len(value) > 253 or not all(LABEL.fullmatch(x) for x in labels) or labels[-1].isdigit():
        raise ValueError(f"not an IP address or host name (RFC 1123: letters, digits, '-', '.') (got {value!r})")
    return value


def check_user(value: str) -> str:
    if not USER.fullmatch(value):
        raise ValueError(f"not a POSIX user name (letters, digits, '.', '_', '-'; at most 32) (got {value!r})")
    return value


def check_path(value: str, what: str) -> str:
    """A remote path: no control characters or newlines; a leading '~/' means the SSH user's home."""
    if not value or CONTROL.search(value):
        raise ValueError(f"{what} must be a non-empty path without control characters or newlines (got {value!r})")
    if value.startswith("~") and not value.startswith("~/"):
        raise ValueError(f"{what} may start with '~/' (the SSH user's home) but not '~user' (got {value!r})")
    if value.rstrip("/") in ("", "~"):
        raise ValueError(f"{what} must name a folder, not / or ~ itself (got {value!r})")
    return value


def parse_day(value: object) -> date | None:
    """YYYY-MM-DD or YYYYMMDD (or a TOML date)."""
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, str):
        for fmt in ("%Y-%m-%d", "%Y%m%d"):
            try:
                return datetime.strptime(value, fmt).date()
            except ValueError:
                continue
    raise ValueError(f"not a date (YYYY-MM-DD or YYYYMMDD) (got {value!r})")


class FleetSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    artifacts: Path = Path("deploy_output")
    known_hosts: Path = Path("~/.ssh/known_hosts")
    data_dir: Path = Path("heqis-data")          # where the gateway's replay pack is made from
    keys: Path | None = None                     # CURVE key folder (heqis keys) to ship; None = plain TCP
    insecure: bool = False                       # allow plain TCP beyond loopback (not recommended)
    replay_start: date | None = None
    replay_rate: float = Field(0.0, ge=0)
    watchdog: Literal["warn", "hold", "off"] = "warn"   # the gateway's data watchdog policy (heqis gateway --watchdog)
    telemetry_port: int = Field(5560, ge=1, le=65535)
    control_port: int = Field(5561, ge=1, le=65535)
    ws_port: int = Field(8765, ge=0, le=65535)
    connect_timeout_s: float = Field(10.0, gt=0)
    command_timeout_s: float = Field(900.0, gt=0)
    ready_timeout_s: float = Field(120.0, gt=0)

    @field_validator("replay_start", mode="before")
    @classmethod
    def _day(cls, v: object) -> date | None:
        return parse_day(v)


class HostSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    role: Literal["gateway", "brain"]
    host: str = Field(min_length=1)
    user: str = Field(min_length=1)                # the SSH user
    port: int = Field(22, ge=1, le=65535)
    workdir: str = "~/heqis"
    python: str = "python3"                      # the host's interpreter (3.10 on JetPack 6 / Ubuntu 22.04)
    identity_file: Path | None = None
    backend: Literal["onnxruntime", "tensorrt", "rknn", "torch"] = "onnxruntime"
    precision: Literal["fp32", "fp16", "int8"] = "fp16"
    brain_port: int = Field(5555, ge=1, le=65534)
    reset_command: str | None = None
    systemd: Literal["auto", "yes", "no"] = "auto"
    run_as: str | None = Field(None, validate_default=True)   # who runs the process (default: user); never root

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        return check_host(v)

    @field_validator("user")
    @classmethod
    def _user(cls, v: str) -> str:
        return check_user(v)

    @field_validator("workdir")
    @classmethod
    def _workdir(cls, v: str) -> str:
        return check_path(v, "workdir")

    @field_validator("python")
    @classmethod
    def _python(cls, v: str) -> str:
        if v.startswith(("/", "~/")):
            return check_path(v, "python")
        if not COMMAND_NAME.fullmatch(v):
            raise ValueError(f"python must be an absolute path (or ~/…) or a plain command name such as python3 "
                             f"(got {v!r})")
        return v

    @field_validator("reset_command")
    @classmethod
    def _reset(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if CONTROL.search(v):
            raise ValueError(f"must be one command line, without newlines or control characters (got {v!r})")
        try:
            words = shlex.split(v)
        except ValueError as exc:
            raise ValueError(f"cannot be split into words like a shell command ({exc}) (got {v!r})") from None
        if not words:
            raise ValueError("must not be empty (leave it out for no reset command)")
        return v

    @field_validator("run_as")
    @classmethod
    def _run_as(cls, v: str | None, info: ValidationInfo) -> str | None:
        user = info.data.get("user")
        if v is not None:
            check_user(v)
        who = v or user
        if who is None:                      # user itself was invalid: that error is reported
            return v
        if who == "root":
            raise ValueError("fleet processes never run as root" + (
                "" if v else " (the SSH user is root)") + ": set run_as to a non-root user of the host")
        if v is not None and v != user and user != "root":
            raise ValueError(f"running as {v!r} needs the SSH user to be root (user = {user!r}); "
                             "leave run_as out to run as the SSH user")
        return v

    @property
    def run_user(self) -> str:
        """The user the host's process runs as."""
        return self.run_as or self.user


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
        msg = e["msg"].removeprefix("Value error, ")
        raise HeqisError(f"{path}: {where}: {msg}{value}", hint="see README, section Fleet") from None
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
