"""How many threads the BLAS under CPU Caffe runs, and how many CPU jobs a machine takes.

Caffe's CPU convolutions are one GEMM an image; OpenBLAS splits each over its threads (one a
core unless told). The miniature's GEMMs are small, and on the 2-core machine two threads were
slower than one (docs/benchmarks/nets-cpu.md, "BLAS threads"), and two single-threaded jobs
side by side did about twice the work of one. OpenBLAS reads the count from the environment
when it is loaded (child processes: solver workers, parallel seeds), and this process, which has
loaded Caffe already (netgen imports caffe_pb2), is told through OpenBLAS's own call.
"""

from __future__ import annotations

import ctypes
import os

#: The variable OpenBLAS reads (the BLAS the Caffe build links: tools/install_caffe.sh).
BLAS_THREADS_VARIABLE = "OPENBLAS_NUM_THREADS"
#: The soname of that library (Debian's libopenblas0; the pthread or OpenMP variant alike).
OPENBLAS_LIBRARY = "libopenblas.so.0"
#: Threads of the BLAS in the miniature's Caffe processes unless the environment names a count.
MINIATURE_BLAS_THREADS = 1


def set_blas_threads(threads: int | None) -> str | None:
    """Set the BLAS threads of this process and its children; returns the count in force.

    ``None``: MINIATURE_BLAS_THREADS unless the environment already names a count (the user's
    ``OPENBLAS_NUM_THREADS`` wins); ``0``: OpenBLAS's own choice (the environment is left as it
    is); ``N``: N threads.
    """
    if threads is None:
        os.environ.setdefault(BLAS_THREADS_VARIABLE, str(MINIATURE_BLAS_THREADS))
    elif threads > 0:
        os.environ[BLAS_THREADS_VARIABLE] = str(threads)
    count = os.environ.get(BLAS_THREADS_VARIABLE)
    if threads != 0 and count and count.isdigit() and int(count) > 0:
        _tell_loaded_openblas(int(count))
    return count


def _tell_loaded_openblas(threads: int) -> None:
    """openblas_set_num_threads in the OpenBLAS this process has loaded (none: nothing to do)."""
    try:
        library = ctypes.CDLL(OPENBLAS_LIBRARY, mode=os.RTLD_NOLOAD | ctypes.RTLD_GLOBAL)
    except OSError:  # not loaded: it reads the environment when it is
        return
    setter = getattr(library, "openblas_set_num_threads", None)
    if setter is not None:
        setter(ctypes.c_int(threads))


def blas_threads_in_force() -> int | None:
    """The threads of the OpenBLAS this process has loaded (None: none loaded)."""
    try:
        library = ctypes.CDLL(OPENBLAS_LIBRARY, mode=os.RTLD_NOLOAD | ctypes.RTLD_GLOBAL)
        getter = library.openblas_get_num_threads
    except (OSError, AttributeError):
        return None
    getter.restype = ctypes.c_int
    return int(getter())


def usable_cores() -> int:
    """The processors this process may run on (a container's or taskset's share, not the host's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
