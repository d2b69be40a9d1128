"""HEQIS — Heterogeneous Edge Quant Inference System.

The core library: data, features, models, backtest, export, backends and the edge runtime.
It never imports the Textual console (``heqis_console``) or the Fabric fleet (``heqis_remote``);
an import-linter contract in ``make test`` keeps it so. Research only: nothing here places orders.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("heqis")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
