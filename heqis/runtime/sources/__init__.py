"""Where the gateway's bars come from, and how several sources are put in time order.

* ``ReplaySource`` (replay) — the data store or a replay pack, bar by bar in date order across
  symbols, at a chosen rate or as fast as the brains take them (back-pressure, nothing dropped).
* ``TushareSource`` (tushare) — polls Tushare Pro for new trading days (needs the ``tushare``
  client, and so the research install's pandas: it is imported only when asked for).
* ``ModbusSource`` (modbus) — reads bars a PLC or sensor gateway writes into Modbus TCP registers.

Each source keeps every symbol's recent history in the store's bar schema (heqis.runtime.bars),
cleaned by the rules ``heqis data`` applies, because a request carries the bars the brain needs.
``Aligner`` merges the sources by bar time.
"""

from heqis.runtime.sources.aligner import Aligner
from heqis.runtime.sources.history import Bar, History
from heqis.runtime.sources.modbus import ModbusMap, ModbusSource, decode_registers, encode_registers
from heqis.runtime.sources.replay import ReplaySource

__all__ = ["Aligner", "Bar", "History", "ModbusMap", "ModbusSource", "ReplaySource", "decode_registers",
           "encode_registers"]
