"""clconv on Dask arrays: conv1d and apply for arrays chunked along batch and length, computed on the
workers' OpenCL devices (needs the `dask` extra: pip install 'clconv[dask]')."""
from .scale.dask import UseDevice, apply, conv1d

__all__ = ["UseDevice", "apply", "conv1d"]
