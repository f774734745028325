"""clconv: PyTorch's Conv1d, forward and backward, on every OpenCL device."""
__version__ = "0.1.0"

from . import grad, params
from .functional import conv1d, conv_transpose1d
from .modules import Conv1d, ConvTranspose1d, Parameter, manual_seed
from .runtime import Device, devices, get_device
from .scale import DataParallel

__all__ = ["Conv1d", "ConvTranspose1d", "DataParallel", "Device", "Parameter", "conv1d", "conv_transpose1d", "grad", "devices", "get_device", "manual_seed", "params"]
