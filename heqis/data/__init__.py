"""Market data: sources (Tushare, bundled sample, CSV), cleaning, adjustment and the parquet store."""
