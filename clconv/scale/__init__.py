"""Beyond one device: DataParallel over a host's OpenCL devices; clconv.dask (clconv/scale/dask.py) for
Dask arrays on a cluster, imported only on request."""
from .parallel import DataParallel

__all__ = ["DataParallel"]
