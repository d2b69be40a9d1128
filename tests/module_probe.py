"""Run the ``heqis`` CLI as usual; on SIGUSR1 write the names of every imported module to $PROBE_OUT.

tests/test_edge_imports.py starts the brain and the gateway through this wrapper, lets them do real
work, then asks what they imported: an edge board has no pandas, pyarrow, torch, textual or fabric.
"""

import json
import os
import signal
import sys


def dump(*_: object) -> None:
    with open(os.environ["PROBE_OUT"], "w", encoding="utf-8") as fh:
        json.dump(sorted(sys.modules), fh)


signal.signal(signal.SIGUSR1, dump)
from heqis.cli import main  # noqa: E402  (the handler must be in place before any heqis code runs)

main()
