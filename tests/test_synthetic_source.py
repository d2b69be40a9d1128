"""``heqis data --source synthetic``: deterministic, A-share-shaped, a store research accepts, and a planted
signal of known strength (pure noise when none is planted)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from heqis.config import load_settings
from heqis.data.assemble import forward_adjust
from heqis.data.bar_checks import clean_bars
from heqis.data.boards import classify
from heqis.data.calendar import xshg_sessions
from heqis.data.pipeline import DataRequest, run_data
from heqis.data.sources.synthetic import BENCHMARK, SyntheticPanel, planted_ic, stock_code
from heqis.data.store import DataStore
from heqis.errors import HeqisError, InvalidValue


def _stock_bars(panel: SyntheticPanel) -> dict[str, pd.DataFrame]:
    return {inst.ts_code: forward_adjust(panel.build(inst)[0]) for inst in panel.instruments() if inst.kind == "stock"}


def test_same_seed_same_panel_and_a_symbol_does_not_depend_on_the_panel_size():
    a = SyntheticPanel(5, years=2, seed=11)
    b = SyntheticPanel(40, years=2, seed=11)
    c = SyntheticPanel(5, years=2, seed=12)
    for inst in a.instruments():
        raw_a, list_a = a.build(inst)
        raw_b, list_b = b.build(inst)
        pd.testing.assert_frame_equal(raw_a, raw_b)
        assert list_a == list_b
    inst = a.instruments()[1]
    assert not a.build(inst)[0]["close_raw"].equals(c.build(inst)[0]["close_raw"])


def test_codes_pass_the_store_checks_and_land_on_every_board():
    boards = set()
    for i in range(400):
        code, board = stock_code(i)
        assert classify(code) == ("stock", board), code
        boards.add(board)
    assert boards == {"main", "chinext", "star", "bse"}
    assert len({stock_code(i)[0] for i in range(10_000)}) == 10_000


def test_bars_look_like_a_shares(tmp_path):
    panel = SyntheticPanel(60, years=3, seed=5)
    sessions = xshg_sessions(panel.start, panel.end)
    limit_days = one_price = suspended = adj_events = listed_late = 0
    for inst in panel.instruments():
        raw, list_date = panel.build(inst)
        bars = forward_adjust(raw)
        assert set(bars["trade_date"]) <= set(sessions)
        cleaned = clean_bars(bars["trade_date"].to_numpy().astype(np.int64), bars["open_raw"], bars["high_raw"],
                             bars["low_raw"], bars["close_raw"], bars["vol"])
        assert not cleaned.dropped and not cleaned.reordered
        if inst.kind == "index":
            assert bars["up_limit"].isna().all() and (bars["adj_factor"] == 1).all()
            continue
        close = bars["close_raw"].to_numpy()
        assert np.allclose(close, np.round(close, 2))                       # on the 0.01 tick
        up, down = bars["up_limit"].to_numpy(), bars["down_limit"].to_numpy()
        known = np.isfinite(up)
        assert (close[known] <= up[known] + 1e-9).all() and (close[known] >= down[known] - 1e-9).all()
        at = known & ((close >= up - 1e-9) | (close <= down + 1e-9))
        limit_days += int(at.sum())
        one_price += int((at & (bars["high_raw"] == bars["low_raw"]).to_numpy()).sum())
        first = bars["trade_date"].iloc[0]
        open_days = ((sessions >= first) & (sessions <= bars["trade_date"].iloc[-1])).sum()
        suspended += int(open_days - len(bars))
        adj_events += int((np.diff(bars["adj_factor"].to_numpy()) != 0).sum())
        listed_late += int(list_date > pd.Timestamp(panel.start))
        assert (bars["turnover"] > 0).all() and (bars["vol"] > 0).all()
    assert limit_days > 20 and one_price > 5 and suspended > 20 and adj_events > 60 and listed_late >= 1


def test_the_store_passes_its_checks_and_says_synthetic(tmp_path):
    root = tmp_path / "syn"
    result = run_data(DataRequest(source="synthetic", data_dir=root, symbols=12, years=2, planted_ic=0.05,
                                  workers=1), load_settings())
    store = DataStore(root)
    manifest = store.require_current()
    assert store.verify() == []
    assert manifest["source"] == "synthetic" and manifest["synthetic"] is True and result.synthetic
    assert manifest["synthetic_panel"]["planted_ic"] == 0.05 and manifest["synthetic_panel"]["symbols"] == 12
    assert manifest["start"] == "2023-01-03" and manifest["end"] == "2024-12-31"
    assert len(store.symbols()) == 13 and BENCHMARK in store.symbols()
    uni = store.read_universe()
    assert set(uni["ts_code"]) == set(store.symbols())
    assert uni.loc[uni["kind"] == "stock", "name"].str.startswith("SYN").all()
    assert any("planted signal" in n for n in result.notes)
    again = run_data(DataRequest(source="synthetic", data_dir=root, symbols=12, years=2, planted_ic=0.05,
                                 workers=1), load_settings())
    assert again.content_hash == result.content_hash
    assert any("up to date" in n for n in again.notes)
    with pytest.raises(HeqisError, match="another synthetic panel"):
        run_data(DataRequest(source="synthetic", data_dir=root, symbols=13, years=2, workers=1), load_settings())


def test_a_planted_signal_is_measured_at_its_strength_and_noise_is_not():
    planted, days = planted_ic(_stock_bars(SyntheticPanel(200, years=3, planted_ic=0.1)))
    assert days > 600
    assert abs(planted - 0.1) < 0.02, planted
    noise, _ = planted_ic(_stock_bars(SyntheticPanel(200, years=3, planted_ic=0.0)))
    assert abs(noise) < 0.015, noise     # one standard error here is about 0.003


def test_refused_values():
    with pytest.raises(InvalidValue):
        SyntheticPanel(0)
    with pytest.raises(InvalidValue):
        SyntheticPanel(10, planted_ic=0.9)
    with pytest.raises(InvalidValue):
        SyntheticPanel(10, years=30)
