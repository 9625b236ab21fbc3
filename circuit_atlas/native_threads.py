"""Keep numeric libraries single-threaded while this process hosts the embedded JVM.

OpenBLAS worker threads running alongside the in-process JVM (the zero-setup local server)
crash the process with SIGSEGV — reproduced with the spectral embeddings of the ROI methods
after a corpus ingest, and gone with one BLAS thread. So analysis code that calls BLAS/OpenMP
heavy libraries runs inside :func:`jvm_safe_threads`: a no-op without a JVM, one native thread
per library with one.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Generator


def jvm_started() -> bool:
    jpype = sys.modules.get("jpype")
    return bool(jpype is not None and jpype.isJVMStarted())


@contextlib.contextmanager
def jvm_safe_threads() -> Generator[None, None, None]:
    if not jvm_started():
        yield
        return
    import sklearn.utils.fixes  # noqa: F401  (loads scikit-learn's OpenMP runtime first)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield
