"""Data sources. Every source answers Tushare Pro queries, so one fetch path serves them all:

* ``tushare``: the real ``tushare`` client over HTTP (``TushareApi``),
* ``sample``: a deterministic synthetic market generated in memory, one instrument at a time
  (``sample.SampleApi``), labelled synthetic wherever it is shown,
* ``csv``: any OHLCV CSV, read directly (``csv_source``).
"""
