"""Import the ``neo4j`` driver without its pandas and pyarrow support, for quick commands.

The driver imports pandas and pyarrow whenever they are installed (``neo4j/_optional_deps.py``):
about half a second, spent only to offer ``Result.to_df()`` and to send pandas values (a
``Series``, ``pd.NA``, a ``Timestamp``) as query parameters. ``graphs``, ``show``, ``rm`` and
``cypher`` use neither: they send plain Python values and print rows without pandas. So, for
them, the CLI imports the driver with both hidden, and they start in a fraction of a second
(``benchmarks/startup.py``).

Only the CLI does this, only for commands that ask, and only when nothing in the process has
imported the driver or pandas yet. pandas itself still imports normally afterwards (``rm`` loads
it to clear a graph's summaries); only this process's driver lacks the pandas extras. A library
user's driver is never touched.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, cast

HIDDEN = ("pandas", "pyarrow", "numpy")


def import_driver_without_dataframes() -> bool:
    """Import ``neo4j`` with pandas and pyarrow hidden; False (and nothing done) when the driver
    or either library is already imported."""
    if "neo4j" in sys.modules or any(name in sys.modules for name in HIDDEN):
        return False
    modules = cast(dict[str, Any], sys.modules)
    for name in HIDDEN:
        modules[name] = None  # `import name` now raises ImportError
    try:
        importlib.import_module("neo4j")
    finally:
        for name in HIDDEN:
            if name in modules and modules[name] is None:
                del modules[name]
    return True
