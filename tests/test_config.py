"""Settings: defaults < heqis.toml < HEQIS_* environment < flags; secrets stay out of files and logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from heqis.config import load_settings, read_token
from heqis.errors import HeqisError


def test_precedence(isolated: Path, monkeypatch: pytest.MonkeyPatch):
    assert load_settings().data_dir == Path("heqis-data")
    (isolated / "heqis.toml").write_text('[data]\ndir = "from-toml"\n[tushare]\ncalls_per_min = 120\n')
    s = load_settings()
    assert s.data_dir == Path("from-toml") and s.tushare_calls_per_min == 120
    monkeypatch.setenv("HEQIS_DATA_DIR", "from-env")
    assert load_settings().data_dir == Path("from-env")
    assert load_settings(data_dir=Path("from-flag")).data_dir == Path("from-flag")
    assert load_settings(data_dir=None).data_dir == Path("from-env")  # None means: flag not given


def test_config_file_errors_name_the_key(isolated: Path, monkeypatch: pytest.MonkeyPatch):
    (isolated / "heqis.toml").write_text("[data]\ndirr = 'x'\n")
    with pytest.raises(HeqisError, match=r"unknown key \[data\] dirr"):
        load_settings()
    (isolated / "heqis.toml").write_text("[tushare]\ncalls_per_min = 'fast'\n")
    with pytest.raises(HeqisError, match="tushare_calls_per_min"):
        load_settings()
    (isolated / "heqis.toml").write_text("this is = not toml [")
    with pytest.raises(HeqisError, match="not valid TOML"):
        load_settings()
    monkeypatch.setenv("HEQIS_CONFIG", str(isolated / "nope.toml"))
    with pytest.raises(HeqisError, match="config file not found"):
        load_settings()


def test_token_from_env_or_private_file(isolated: Path, monkeypatch: pytest.MonkeyPatch):
    token = isolated / "tok"
    token.write_text("  abc123\n")
    token.chmod(0o600)
    monkeypatch.setenv("HEQIS_TUSHARE_TOKEN_FILE", str(token))
    assert read_token(load_settings()) == "abc123"
    monkeypatch.setenv("HEQIS_TUSHARE_TOKEN", "from-env")
    s = load_settings()
    assert read_token(s) == "from-env"
    assert "from-env" not in repr(s) and "from-env" not in str(s.model_dump())  # SecretStr
    monkeypatch.delenv("HEQIS_TUSHARE_TOKEN")
    token.chmod(0o640)
    with pytest.raises(HeqisError, match="readable by others"):
        read_token(load_settings())
