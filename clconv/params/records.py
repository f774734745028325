"""The typed parameter records: one per pass, each with exactly the parameters its planner reads.

Tile and launch fields are named after the kernel macro they set (TILE_CO, WG_L, LB, ...); policy fields
say when a variant runs. A variant that a class does not use is None, never a sentinel number: a forward
with DW_ROWS None never runs the depthwise sample-block kernel, a weight gradient with CI_LANES_MIN None
never runs lanes along input channels.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import ClassVar, Optional

STRATEGIES = ("register", "local")


class Pass(str, enum.Enum):
    """The three passes of a convolution: each has its planner, its parameter record, rows and tuned entries."""
    FORWARD = "forward"
    BACKWARD_DATA = "backward_data"
    BACKWARD_WEIGHT = "backward_weight"

    def __str__(self) -> str:  # its name in messages and cache keys
        return self.value

    __format__ = str.__format__


@dataclass(frozen=True)
class PassParams:
    """What every pass shares: its strategy and how it tiles the channels it writes x the positions.

    ROWS, GROUP_ROWS and STAGED name the pass's own fields for the channel tile of a work-item, the
    work-items along channel tiles, and the reduction channels staged per chunk in __local memory (None
    where the pass has none), so that one fitting serves every pass."""
    strategy: str = "register"  # "register": register tiles, no barriers (CPUs); "local": __local tiles (GPUs)
    TILE_L: int = 2             # vectors of positions per work-item tile
    VEC: int = 4                # lanes per vector (the register strategy's; the local one's is LOCAL_VEC)
    LOCAL_VEC: int = 1          # lanes per vector of the local strategy's micro-tiles, in kernels that take them
    WG_L: int = 8               # work-items per work-group along the positions
    BLOCK_KB: int = 256         # input a register pass keeps in a core's cache while its channel tiles pass over it
    UNROLL_K_MAX: int = 8       # tap loops unroll fully up to this reach
    TILE_REGS: Optional[int] = None  # vector registers a tile of several channels may hold: accumulators, inputs, a weight

    ROWS: ClassVar[str] = "TILE_CO"
    GROUP_ROWS: ClassVar[str] = "WG_CO"
    STAGED: ClassVar[Optional[str]] = None

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "strategy" or (value is None and f.default is None):
                continue
            optional = " or None" if f.default is None else ""
            if type(value) not in (int, bool):
                raise TypeError(f"{type(self).__name__}.{f.name} must be an int{optional}, got {value!r}")
            if value < (f.type != "bool"):
                raise ValueError(f"{type(self).__name__}.{f.name} must be positive{optional}, got {value!r}")


@dataclass(frozen=True)
class ForwardParams(PassParams):
    """y = conv1d(x): conv1d_forward.cl, its depthwise sample-block kernel and its realigned kernel."""
    TILE_CO: int = 4            # output channels per work-item tile
    WG_CO: int = 1              # work-items per work-group along the channel tiles
    CI_TILE: int = 4            # input channels per chunk staged in __local memory (local strategy)
    TILE_R: int = 1             # channel tiles per work-item (register)
    TILE_P: int = 1             # position tiles per work-item (register)
    CI_CHUNK: int = 32          # input channels per cache chunk of a work-item's reduction (register)
    STAGE_MIN: Optional[int] = None     # reductions C_in_g x K of at least this read a staged copy of the input
    STAGE_FLOPS: Optional[int] = None   # strided passes of at least this many multiply-adds read it split in phases
    PHASE_TILE_R: int = 1       # channel tiles per work-item over each window of that phase-split copy, and
                                # in one stride phase of an input gradient (register strategy)
    WORK_MIN: Optional[int] = None      # multiply-adds a work-item does at least (more position tiles), on big passes
    NT_STORE_MIN: Optional[int] = None  # outputs of at least this many bytes go out with non-temporal stores
    ALIGNED_TAPS: Optional[int] = None  # reductions of at most this many products per output run realigned...
    ALIGNED_CO: int = 8         # ... in tiles of this many output channels (at least that many per group)
    ALIGNED_RUN: int = 1024     # ... along runs of this many positions
    DW_ROWS: Optional[int] = None       # depthwise stride-1 passes of even batches take this many samples per tile
    DW_TILE_L: int = 4          # ... and this many vectors of one channel
    DW_TILES: int = 8           # ... and this many tiles per work-item
    SLIDE_K_MIN: Optional[int] = None   # stride-1, dilation-1 layers of at least this many taps slide...
    SLIDE_CO_MAX: int = 8       # ... with at most this many output channels per group...
    SLIDE_CO: int = 1           # ... in tiles of at most this many channels
    LANES_L_MAX: Optional[int] = None   # rows of fewer outputs than this run with lanes along output channels...
    LANES_POS: int = 6          # ... a work-item taking this many positions of the batch
    LANES_CV: int = 2           # ... and this many vectors of output channels...
    LANES_FLOPS_MIN: int = 1 << 22  # ... in passes of at least this many flops (its two extra launches cost more below)
    COLS_L_MAX: Optional[int] = None    # rows of fewer outputs than this: dot products over the input's columns...
    COLS_POSITIONS_MAX: int = 4096  # ... where the batch holds at most this many positions (N x L_out)...
    COLS_CHANNELS_MIN: int = 64  # ... and each group at least this many output channels...
    COLS_CO: int = 4            # ... in tiles of this many output channels...
    COLS_POS: int = 4           # ... by this many positions

    STAGED: ClassVar[Optional[str]] = "CI_TILE"


@dataclass(frozen=True)
class BackwardDataParams(PassParams):
    """dx = the gather of dy back through the taps: conv1d_backward_data.cl (also conv_transpose1d)."""
    TILE_CI: int = 4            # input channels per work-item tile
    WG_CI: int = 1              # work-items per work-group along the channel tiles
    CO_TILE: int = 4            # output channels per chunk staged in __local memory (local strategy)
    AS_FORWARD: bool = False    # stride-1 input gradients run as forwards of dy with the flipped weights
    PHASE_DEPTH_MIN: Optional[int] = None  # strided ones (register strategy) whose phases reduce over C_out_g x
    PHASE_FLOPS_MIN: int = 1 << 24        # ... ceil(K / stride) >= this, and of this many flops, as one per phase
    ROWS_CI: Optional[int] = None  # at most this many input channels per group...
    ROWS_CO: int = 64           # ... and at least this many output channels accumulate whole rows in cache
    ROWS_SEG: int = 1024        # ... in segments of at most this many positions per phase
    COLS_STRIDE_MIN: Optional[int] = None  # strides of at least this: a pointwise forward into columns, overlap-added
    COLS_L_MAX: Optional[int] = None    # rows of fewer outputs than this: the columns straight from the weights...
    COLS_POSITIONS_MAX: int = 4096  # ... where the batch holds at most this many positions (N x L_out)...
    COLS_CHANNELS_MIN: int = 64  # ... and each group at least this many output channels...
    COLS_POS: int = 6           # ... in tiles of this many positions...
    COLS_RV: int = 2            # ... by this many vectors of weight entries (ci, k)

    ROWS: ClassVar[str] = "TILE_CI"
    GROUP_ROWS: ClassVar[str] = "WG_CI"
    STAGED: ClassVar[Optional[str]] = "CO_TILE"


@dataclass(frozen=True)
class BackwardWeightParams(PassParams):
    """dw = the sum over batch and positions of dy times the input: conv1d_backward_weight.cl. Its WG_L
    counts work-items along input channels x tap tiles, not positions."""
    TILE_CO: int = 4            # output channels per work-item tile
    WG_CO: int = 1              # work-items per work-group along the output-channel tiles
    TILE_CI: int = 1            # input channels per work-item tile (local strategy)
    TILE_K: int = 3             # taps per work-item tile
    LB: int = 64                # positions per block staged in __local memory
    RUN: int = 2048             # positions per chunk of partial sums, at least
    STAGE_MIN: Optional[int] = None     # reductions C_in_g x K of at least this read a staged copy of the input
    STAGE_FLOPS: Optional[int] = None   # strided passes of at least this many multiply-adds read it split in phases
    ACC_MAX: Optional[int] = None       # tiles TILE_CO (at most) x TILE_K picked per shape within this many accumulators
    TAPS_MAX: Optional[int] = None      # ... of at most this many taps
    CI_LANES_MIN: Optional[int] = None  # C_in_g of at least this (and STAGE_FLOPS): vector lanes along input channels
    CI_LANES_ACC: int = 16      # ... in tiles of this many accumulators
    CI_LANES_B: int = 1         # ... which for one tap span this many blocks of input channels
    SLIDE_K_MIN: Optional[int] = None   # stride-1, dilation-1 layers of at least this many taps: taps VEC apart...
    SLIDE_CO: int = 2           # ... in tiles of at most this many output channels...
    SLIDE_REGS: int = 16        # ... whose accumulators, input window and a dy vector fill this many registers
    COLS_L_MAX: Optional[int] = None    # rows of fewer outputs than this sum over the input's columns...
    COLS_POSITIONS_MAX: int = 4096  # ... where the batch holds at most this many positions (N x L_out)...
    COLS_CHANNELS_MIN: int = 64  # ... and each group at least this many output channels...
    COLS_CO: int = 4            # ... in tiles of this many output channels...
    COLS_RV: int = 4            # ... by this many vectors of weight entries (ci, k)...
    COLS_STEPS: int = 8         # ... this many channel tiles per work-item, one after the other


RECORDS = {Pass.FORWARD: ForwardParams, Pass.BACKWARD_DATA: BackwardDataParams,
           Pass.BACKWARD_WEIGHT: BackwardWeightParams}


def field_names(pass_name: Pass) -> tuple[str, ...]:
    return tuple(f.name for f in fields(RECORDS[Pass(pass_name)]))


def all_field_names() -> tuple[str, ...]:
    """Every parameter name of any pass, in record order without repeats."""
    return tuple(dict.fromkeys(name for p in Pass for name in field_names(p)))


def record(pass_name: Pass, values: dict) -> PassParams:
    """The pass's record from the fields it has among `values` (others belong to other passes), over its
    defaults."""
    cls = RECORDS[Pass(pass_name)]
    own = field_names(pass_name)
    return cls(**{k: v for k, v in values.items() if k in own})
