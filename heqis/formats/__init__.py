"""On-disk formats the research machine writes and the edge reads: the run folder and the artifact set.

numpy-free, pandas-free and torch-free on purpose (an import-linter contract keeps it so), so that
the brain and the gateway on an edge board can read and verify them. Layouts and fields:
docs/architecture.md, "Formats".
"""

from heqis.formats.artifacts import ArtifactSet
from heqis.formats.run import RunFolder

__all__ = ["ArtifactSet", "RunFolder"]
