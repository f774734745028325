"""clconv: PyTorch's Conv1d, forward and backward, on every OpenCL device."""
from . import grad, params
from .functional import conv1d, conv_transpose1d
from .modules import Conv1d, ConvTranspose1d, Parameter, manual_seed
from .runtime import Device, devices, get_device
from .scale import DataParallel
from .version import __version__

__all__ = ["Conv1d", "ConvTranspose1d", "DataParallel", "Device", "Parameter", "__version__", "conv1d", "conv_transpose1d", "devices",
           "get_device", "grad", "manual_seed", "params"]
