"""Package re-exports that import a submodule only when one of its names is first used.

`from pipelines.ranking import rerank` works, while a DAG file that reads
`pipelines.ranking.config` does not pull torch, pandas or Spark in through the
package's `__init__`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], object]:
    """A module `__getattr__` for `package` that resolves each public name from its submodule."""

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__
