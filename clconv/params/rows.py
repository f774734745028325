"""The built-in parameter rows, one per device class (runtime.DEVICE_CLASSES), and where each comes from.

A row maps a pass ("*" for what every pass shares) to fields of that pass's record (records.py) over its
defaults; "<pass>_deep" adds fields for reductions deep enough to read the staged input (C_in_g x K >=
STAGE_MIN), "<pass>_strided" for strides above 1, "<pass>_deep_strided" for both. Rows are shared between
classes until a class is measured on its own; PROVENANCE says, per class, what was measured where.
CPUs (PoCL) want register tiles without barriers: its work-item loop vectoriser gives up on barriers.
GPUs want work-group tiles staged in __local memory.
"""
from __future__ import annotations

_CPU = {
    # Work-groups of one row: PoCL runs multi-row groups of these kernels several times slower. Tiles of a
    # few channels keep within 15 of the 16 vector registers: depthwise multiplier 2 (K=31) ran 2 x 6 tiles
    # spilling, 2 x 4 ran 1.4-1.6 times as fast, 2 x 5 1.2 times.
    "*": {"strategy": "register", "TILE_L": 2, "VEC": 8, "WG_L": 1, "TILE_REGS": 15},
    # Deep reductions (C_in_g x K >= STAGE_MIN) read a staged copy of the input (pad_rows.cl): no edge
    # tiles, no cache-set conflicts; shallower ones would spend more on the copy than they save.
    # Stride-1 layers of 12 taps or more and at most 8 outputs per group (depthwise, channel multipliers,
    # input gradients of filterbanks as forwards) take their taps VEC apart, the input vectors sliding
    # through registers (conv1d_forward_slide): one load per tap instead of one per tile vector. Side by
    # side on a 2-core EPYC: filterbank input gradient (80 -> 1, K251) 168 -> 111 ms, multiplier (K31, 2 x 4)
    # forward 8.3 -> 5.9 ms, depthwise K31 forward 36.7 -> 21.1, its input gradient 38.4 -> 16.7 ms,
    # multiplier 4 (K15) forward 8.2 -> 3.7 ms (K15 lost while edge tiles gathered element-wise). The
    # filterbank forward itself (80 outputs) lost with it, 93 -> 104 ms, against 6 x 2 tiles sharing two
    # input vectors, and ran as fast in 4 x 3.
    # A work-item of a strided forward passes PHASE_TILE_R channel tiles over each input window, which a
    # stride of s makes s times longer per output than a stride-1 window (strided4 49 -> 63 GF/s), and so
    # does one of a stride phase of an input gradient (side by side on a 2-core AMD EPYC, PoCL 3.0, znver3,
    # process CPU time per call: strided 83 -> 79, strided4 124 -> 119 ms).
    # Rows of fewer than LANES_L_MAX outputs that vectors of positions would fill worse take lanes along
    # output channels, 6 positions x 2 vectors of channels (conv1d_forward_channel_lanes): side by side on
    # the EPYC, old / new alternated twice, (32, 720, 5) K5 forward 37-51 -> 7-15 ms and its input gradient
    # 45-52 -> 9-14 ms, (8, 256, 36) K10 dilation 5 forward 31-46 -> 7-9 ms; 4 x 3 and 12 x 1 tiles no faster.
    "forward": {"TILE_CO": 6, "WG_CO": 1, "STAGE_MIN": 256, "WORK_MIN": 1 << 20, "NT_STORE_MIN": 16 << 20,
                "PHASE_TILE_R": 4, "SLIDE_K_MIN": 12, "SLIDE_CO": 2, "LANES_L_MAX": 128, "LANES_POS": 6,
                "LANES_CV": 2, "COLS_L_MAX": 48,
                "COLS_POSITIONS_MAX": 128, "COLS_CHANNELS_MIN": 64},
    # Strided forwards read the staged input split into phases (vector loads, not gathers: stride-2 grouped
    # 25 -> 39 GF/s side by side), in chunks of 24 input channels, whose weights for the work-item's 4 tiles
    # and phase-split windows share the 32 KiB first-level cache (side by side against 32 on a 2-core AMD
    # EPYC, PoCL 3.0, znver3, process CPU time per call, two runs: strided 72.7 -> 69.5 and 75.9 -> 68.8,
    # stride-2 grouped 34.4 -> 32.3 and 34.2 -> 32.5, (8, 512, 2000) K5 s2 274 -> 267 ms; 16 was as fast on
    # the first two, slower on the last).
    "forward_strided": {"STAGE_FLOPS": 1 << 24, "CI_CHUNK": 24},
    # Stride-1 input gradients run as forward convolutions with flipped weights (flip_weights.cl): side by
    # side, dense 121 -> 143, tcn 88 -> 124, depthwise 21 -> 39 GF/s.
    # Strided ones whose phases reduce over C_out_g x K/s >= 256 run as one such forward per stride phase
    # (register tiles, the flipped copy read with the phase's tap step, every stride-th output written):
    # side by side on a 2-core AMD EPYC (PoCL 3.0, znver3), process CPU time per call, medians of 3
    # alternating runs: strided 93 -> 80, strided4 122 -> 113, (8, 512, 2000) K5 s2 314 -> 238, strided
    # without padding 101 -> 79 ms; shallower phases lost (4 groups of 64 channels K5 s2 36 -> 40, 8 groups
    # of 16 channels K8 s4 13 -> 21 ms). (Reading the layer's weight in place, transposed, instead of the
    # flipped copy lost on strided4: a step along the phase's input channels crossed a 4 KiB row.)
    # Strides of COLS_STRIDE_MIN or more, whose phases hold a tap or two, run in columns (a pointwise
    # forward of dy, then an overlap-add; backward_data._columns): side by side on the EPYC, a hop-160 K400
    # filterbank's input gradient 111-165 -> 0.6-1.1 ms, (8, 256, 4000) K16 stride 16 224-254 -> 34-76 ms.
    "backward_data": {"TILE_CI": 6, "WG_CI": 1, "AS_FORWARD": True, "PHASE_DEPTH_MIN": 256,
                      "COLS_STRIDE_MIN": 8, "COLS_L_MAX": 112},
    # 16 vector registers on AVX2: 3 x 3 accumulators, 3 dy vectors and the input stay unspilled
    # (4 x 3 spills: tcn 67 -> 128 GF/s with 3 x 3). Tiles picked per shape within 12 accumulators and 5 taps,
    # so that the taps split evenly (side by side against 3 x 3: strided4 K8 3 x 4 75 -> 103, stride-2 K5
    # 2 x 5 72 -> 83, multiplier K31 2 x 5 41 -> 47 GF/s; K3 layers keep 3 x 3, wav2vec and the K251
    # filterbank ran as fast). Strided weight gradients of STAGE_FLOPS or more read the phase-split copy
    # (wav2vec 18-25 -> 26-51 GF/s on a noisy 2-core Xeon). C_in_g >= 8: lanes along input channels over
    # the channel-blocked copy, 12 accumulators whose tile with its input vectors keeps within TILE_REGS
    # (side by side on a 2-core EPYC: pointwise 68 -> 153, dense 171 -> 210, batch-1 68 -> 101, strided4
    # 154 -> 174, grouped 148 -> 161 GF/s).
    # Stride-1 kernels of 24 taps or more: tap tiles VEC apart sliding over a padded copy of the input
    # (conv1d_backward_weight_slide), 4 channels x 3 taps, 12 accumulators beside 3 input vectors and a dy
    # vector (5 loads per 12 multiply-adds against 7 per 10), a work-item passing every tap tile of its
    # residue over each block of positions. Side by side on a 2-core EPYC: filterbank (K251) 100 -> 80 ms
    # with 2 x 4 tiles, then 2 x 4 -> 4 x 3 54 -> 52 ms and at K401 86 -> 79 ms; K31 multiplier 7.5 -> 5.7,
    # depthwise 67.8 -> 54.0 ms; K15 (multiplier 4) lost, 6.5 -> 7.0 ms.
    "backward_weight": {"TILE_CO": 3, "WG_CO": 1, "TILE_K": 3, "ACC_MAX": 12, "TAPS_MAX": 5, "RUN": 4096,
                        "STAGE_MIN": 256, "STAGE_FLOPS": 1 << 24, "CI_LANES_MIN": 8, "CI_LANES_ACC": 12,
                        "SLIDE_K_MIN": 24, "SLIDE_CO": 4, "COLS_L_MAX": 48},
}
# PoCL compiling for a CPU with AVX-512 (32 vector registers of 16 floats): twice the vector width and
# 16-channel tiles (16 x 16 accumulators; dense forward 131 -> 172 GF/s over 12 channels).
_CPU_AVX512 = {
    # Tap loops unroll fully up to K = 32 (loads shared between taps; side by side: depthwise K=31
    # forward 80 -> 92, its input gradient 57 -> 67, wav2vec K=10 forward 52 -> 63 GF/s).
    "*": {"strategy": "register", "TILE_L": 1, "VEC": 16, "WG_L": 1, "UNROLL_K_MAX": 32},
    # Forward outputs of 16 MiB or more bypass the cache (non-temporal stores where aligned), side by
    # side: depthwise 70 -> 84, dense 184 -> 207 GF/s. Rows of unaligned length, of at most 15 products
    # per output, go out realigned (ALIGNED_TAPS): wav2vec (L_out 3199) 53 -> 71 GF/s side by side.
    # Depthwise stride-1 passes of even batches: 4 samples of a channel share its weights, input vectors
    # load once for all their taps (side by side: depthwise K31 forward 100 -> 139, its input gradient
    # 80 -> 120, K3 15.6 -> 30.6 GF/s).
    # Taps of 24 or more slide through registers (conv1d_forward_slide; weight gradients from 64 taps,
    # conv1d_backward_weight_slide), side by side with PoCL 3.1 (Debian's, target skylake-avx512) on a
    # 2-core Zen 5 EPYC: filterbank K251 input gradient 24-26 -> 13 ms, weight gradient 28-32 -> 14 ms,
    # multiplier K31 forward 2.0-3.3 -> 1.2-2.2 ms, input gradient 3.9-8.4 -> 1.8-3.5 ms; depthwise K31
    # forward unchanged, input gradient 4.7 -> 5.2 ms, weight gradient lost (8.7-11.5 -> 13.5), hence 64 there.
    "forward": {"TILE_CO": 16, "WG_CO": 1, "STAGE_MIN": 256, "WORK_MIN": 1 << 20, "NT_STORE_MIN": 16 << 20,
                "ALIGNED_TAPS": 15, "DW_ROWS": 4, "LANES_L_MAX": 128, "LANES_POS": 8, "LANES_CV": 2,
                "SLIDE_K_MIN": 24, "SLIDE_CO": 2, "COLS_L_MAX": 48,
                "COLS_POSITIONS_MAX": 128, "COLS_CHANNELS_MIN": 64},
    # Deep reductions (staged input) in 8 x 3 tiles: 11 loads per 24 multiply-adds instead of 17 per 16;
    # dense forward 132-143 -> 198 GF/s side by side (grouped and tcn, shallower, lost with it).
    "forward_deep": {"TILE_CO": 8, "TILE_L": 3},
    # Input gradients with <= 4 input and >= 64 output channels per group accumulate whole runs of
    # positions in cache (conv1d_backward_data_rows): wav2vec 25 -> 56 GF/s side by side.
    "backward_data": {"TILE_CI": 16, "WG_CI": 1, "AS_FORWARD": True, "ROWS_CI": 4, "ROWS_CO": 64,
                      "COLS_STRIDE_MIN": 8, "COLS_L_MAX": 112},
    # Up to 6 channels and 32 accumulators of 16 lanes, tiles picked per shape (ACC_MAX): dense 6 x 3,
    # grouped K5 4 x 5, wav2vec K10 3 x 10, depthwise K31 1 x 31. Side by side against fixed 6 x 3:
    # grouped 91 -> 107, wav2vec 64 -> 92, depthwise 56 -> 78 GF/s. Runs of 4096 positions (against
    # 1024: depthwise 40 -> 53, tcn 94 -> 106, (1, 64, 10^6) 88 -> 126 GF/s, none slower).
    # C_in_g >= 16: lanes along input channels over a channel-blocked copy, 24 accumulators (dense 8 x 3):
    # the input streams one line per position and dy is broadcast (dense 105 -> 255 GF/s, prototype).
    "backward_weight": {"TILE_CO": 6, "WG_CO": 1, "TILE_K": 3, "ACC_MAX": 32, "RUN": 4096, "STAGE_MIN": 256,
                        "STAGE_FLOPS": 1 << 24, "CI_LANES_MIN": 16, "CI_LANES_ACC": 24, "CI_LANES_B": 4,
                        "SLIDE_K_MIN": 64,
                        "SLIDE_CO": 2, "COLS_L_MAX": 48},
}
# CPU runtimes that vectorise across work-items (Intel's): explicit 16-float vectors in work-groups of one
# item still beat scalar work-items vectorised 16-way along the positions (side by side on Intel's
# runtime: mid forward 1.13x torch against 0.57x, grouped 3.5x against 0.9-1.0x; the GPU rows ran 0.1x).
# Its compiler keeps fewer accumulators live than PoCL's: deep forwards in 8 x 2 tiles (mid 1.02 -> 1.29x,
# pointwise 1.56 -> 1.88x torch against 8 x 3), deep strided ones over the phase-split copy in 4 x 4 tiles,
# two channel tiles per window (strided 1.03 -> 1.21x, strided4 1.06 -> 1.16x). Shallow strided layers keep
# PoCL's tiles and read no copy: with 4 x 4 tiles over a phase-split copy (STAGE_FLOPS) 5 channels K3
# stride 2 ran 2.6 -> 0.9x torch, 13 channels K7 21 -> 13x (a depthwise K21 stride 4 gained 2.2 -> 5.3x).
# Long taps slide through registers (conv1d_forward_slide, conv1d_backward_weight_slide), as on cpu-avx2:
# side by side on a 2-core Zen 5 EPYC, filterbank K251 input gradient 28.9 -> 17.1 ms, weight gradient
# 51.1 -> 16.2 ms (tiles of 2 channels against 4: 17.7 ms), multiplier K31 forward 2.7 -> 1.3-1.6,
# input gradient 6.2 -> 2.6-3.2, weight gradient 7.0 -> 3.1-4.4 ms, K64 single-channel weight gradient
# 14.4 -> 4.2-4.7 ms. Reductions of 128-255 products per output are staged too (STAGE_MIN), alternated
# twice there: (32, 184, 428) K1 forward 7.0 -> 4.5-5.1 ms, input gradient 6.9 -> 4.5-4.7 ms, (8, 160, 1000)
# K1 forward 2.6 -> 1.7-2.7 ms, (16, 64, 2000) K3 3.4 -> 2.9 ms; staging 72-96 products lost ((16, 8, 4000) K9
# forward 1.7 -> 2.3 ms). Strided input gradients whose phases reduce over 256 products or more run per
# phase as forwards (PHASE_DEPTH_MIN, as on cpu-avx2), alternated twice: strided4 42 -> 29 ms, strided
# 36-38 -> 21 ms, (16, 64, 4000) -> 128 K5 stride 2 15 -> 9.5 ms, (8, 512, 2000) K3 stride 2 50-53 -> 39 ms.
# Gradients of rows shorter than COLS_L_MAX (48) with 64 output channels or more per group run in columns,
# lanes along the weights' rows (conv1d_backward_weight_columns over pad_columns' copy of the input,
# conv1d_backward_data_columns from the weights themselves), alternated there with the kernels before: weight
# gradients (32, 720, 5) K5 7.8 -> 2.7 ms, (8, 256, 36) -> 512 K10 dilation 5 9.0 -> 2.7 ms, (16, 256, 11) ->
# 512 K3 stride 4 0.84 -> 0.30 ms, (8, 128, 33) K9 stride 2 0.73 -> 0.62 ms; input gradients of the same 7.7
# -> 2.8, 5.3 -> 2.3, 1.93 -> 0.37, 1.21 -> 0.39 ms. A row of 55 outputs lost (weight gradient 0.86 -> 1.04
# ms, the copy costing more than its sums), and so did 29 output channels per group (0.54 -> 1.9 ms). Input
# gradients take the columns up to rows of 111 outputs, per process, alternated 4 times: (1, 152, 55) K28
# 1.00-1.07 -> 0.29-0.32 ms, (16, 256, 100) K3 2.0-2.1 -> 1.8 ms, (8, 256, 80) K5 1.6-1.8 -> 1.2-1.4 ms; (8,
# 128, 128) K5 lost (0.50 -> 0.65 ms). Forwards of at most 128 positions in the batch take dot products over
# the same columns (conv1d_forward_columns) instead of lanes along output channels, whose copy of the weights
# then costs more than a copy of the input; each variant timed alone in its own process, alternated 4 times:
# (16, 256, 11) -> 512 K3 stride 4 0.48-0.56 -> 0.27-0.32 ms, (32, 256, 11) the same 0.80-0.87 -> 0.42-0.44,
# (8, 720, 5) K5 1.43-1.67 -> 0.96-1.08, (8, 512, 8) K3 0.68-1.0 -> 0.52-0.60 ms; with more positions the
# lanes stay ahead ((32, 720, 5) 3.6-4.0 against 4.2-4.5 ms, (8, 256, 36) -> 512 K10 dilation 5 3.3-3.5
# against 3.5-3.6 ms). The cpu-avx2 and cpu-avx512 rows take the same bounds (cpu-avx512's checked with PoCL
# 3.1, PROVENANCE; cpu-avx2's unmeasured). Strided weight gradients of ceil(K / stride) >= SLIDE_K_MIN taps
# slide too, over their stride phases taken as input channels (every CPU row), alternated there: (2, 1, 46134)
# -> 53 K132 stride 2 17.0 -> 2.9 ms, (2, 1, 14915) -> 128 K287 stride 4 8.6 -> 2.3 ms, (8, 1, 16000) -> 80
# K251 stride 2 26.7 -> 7.6 ms, (4, 1, 16000) -> 40 K101 stride 4 2.3 -> 1.8 ms, (8, 16, 4000) K64 stride 2
# depthwise 1.57 -> 1.26 ms. Pointwise weight gradients with channel lanes take 4 channel blocks x 6 output
# channels per tile (CI_LANES_B; 24 x 1 broadcast a dy element per multiply-add), per process, alternated 4
# times: (16, 256, 1000) -> 512 15.3-18.9 -> 11.3-12.5 ms (3 blocks 12.5-13.5, 6 blocks 18.0-18.5), (32, 184,
# 428) 3.0-3.4 -> 2.8-3.0 ms.
_CPU_IMPLICIT_SIMD = {
    **_CPU_AVX512,
    "forward": {**_CPU_AVX512["forward"], "SLIDE_K_MIN": 12, "SLIDE_CO": 2, "STAGE_MIN": 128},
    "forward_deep": {"TILE_CO": 8, "TILE_L": 2},
    "forward_deep_strided": {"PHASE_TILE_R": 2, "TILE_CO": 4, "TILE_L": 4},
    "backward_data": {**_CPU_AVX512["backward_data"], "PHASE_DEPTH_MIN": 256},
    "backward_weight": {**_CPU_AVX512["backward_weight"], "SLIDE_K_MIN": 24, "SLIDE_CO": 2},
}
# GPUs: work-group tiles staged in __local memory, register micro-tiles read with vector __local loads,
# stride-1 input gradients as forwards reading the flipped weights in place, weight gradients split over
# chunks of at least RUN positions. Sizes from the vendors' public optimisation guides, never timed on a
# GPU; bench/gpu_model.py gives their traffic and instruction counts on Oclgrind.
# NVIDIA: warps of 32, up to 255 registers per thread, 48 KiB of shared memory per block without opt-in:
# 256 work-items (8 warps) of 4 channels x 4 vectors of 4 positions (64 accumulators); weight gradients in
# 64 x 64 channel tiles, 4 x 4 channels x up to 5 taps per work-item (80 accumulators).
_NVIDIA_GPU = {
    "*": {"strategy": "local", "TILE_L": 2, "WG_L": 32},
    "forward": {"TILE_CO": 4, "TILE_L": 4, "LOCAL_VEC": 4, "WG_L": 16, "WG_CO": 16, "CI_TILE": 8},
    "backward_data": {"TILE_CI": 4, "WG_CI": 4, "CO_TILE": 4, "AS_FORWARD": True},
    "backward_weight": {"TILE_CO": 4, "TILE_CI": 4, "TILE_K": 5, "WG_L": 16, "WG_CO": 16, "LB": 32, "RUN": 1024},
}
# AMD (GCN/CDNA wavefronts of 64, RDNA of 32): 256 work-items are four wave64 or eight wave32; 64 KiB of
# LDS per work-group holds twice the input channels per staged chunk, halving the barriers.
_AMD_GPU = {
    **_NVIDIA_GPU,
    "forward": {**_NVIDIA_GPU["forward"], "CI_TILE": 16},
    "backward_weight": {**_NVIDIA_GPU["backward_weight"], "LB": 64},
}
# Intel (Gen9-Xe): EUs run SIMD8-32 sub-groups from a 4 KiB register file per hardware thread, so a
# SIMD16 work-item has about 64 registers: 32 accumulators forward (4 channels x 2 vectors of 4), 48 in
# the weight gradient (4 x 4 channels x 3 taps), in work-groups of 128.
_INTEL_GPU = {
    **_NVIDIA_GPU,
    "forward": {**_NVIDIA_GPU["forward"], "TILE_L": 2, "WG_CO": 8},
    "backward_weight": {**_NVIDIA_GPU["backward_weight"], "TILE_K": 3, "WG_CO": 8},
}
_ACCELERATOR = {
    "*": {"strategy": "local", "TILE_L": 2, "WG_L": 16},
    "forward": {"TILE_CO": 2, "WG_CO": 4, "CI_TILE": 4},
    "backward_data": {"TILE_CI": 2, "WG_CI": 4, "CO_TILE": 4},
    "backward_weight": {"TILE_CO": 2, "WG_CO": 4},
}

BUILTIN = {
    "cpu-avx512": _CPU_AVX512,
    "cpu-avx2": _CPU,
    "cpu": _CPU,
    "cpu-implicit-simd": _CPU_IMPLICIT_SIMD,
    "nvidia-gpu": _NVIDIA_GPU,
    "amd-gpu": _AMD_GPU,
    "intel-gpu": _INTEL_GPU,
    "gpu": _NVIDIA_GPU,
    "accelerator": _ACCELERATOR,
    "other": {},
}

# One line per class: where its row comes from.
PROVENANCE = {
    "cpu-avx512": "measured with PoCL 3.0 (LLVM target icelake-client) on a 2-core AVX-512 Xeon, side by side: "
                  "dense forward 131 -> 172 GF/s (16-channel tiles), deep 132-143 -> 198; weight gradient with "
                  "channel lanes 105 -> 255; wav2vec input gradient 25 -> 56 GF/s; its sliding taps with PoCL 3.1 "
                  "(target skylake-avx512) on a 2-core Zen 5 EPYC: filterbank weight gradient 28 -> 14 ms; there too, "
                  "each variant alone in its own processes: short rows in columns, (32, 720, 5) K5 weight gradient "
                  "7.2 -> 2.2 ms, input gradient 4.3 -> 2.5 ms, (16, 256, 11) -> 512 K3 stride 4 forward "
                  "0.69 -> 0.36 ms; "
                  "(2, 1, 46134) -> 53 K132 stride 2 weight gradient in stride phases 3.2 -> 2.2 ms; pointwise weight "
                  "gradient in 4 channel blocks 11.8 -> 11.3 ms",
    "cpu-avx2": "measured with PoCL on the same 2-core AVX-512 Xeon (the generic CPU row, timed before the AVX-512 row "
                "was split off): wav2vec weight gradient 18-25 -> 26-51, tcn 67 -> 128 GF/s (3 x 3 tiles); input "
                "gradients as forwards dense 121 -> 143, tcn 88 -> 124, depthwise 21 -> 39 GF/s; its strided, "
                "few-channel and weight-gradient tiles with PoCL 3.0 (LLVM target znver3) on a 2-core AMD EPYC, side "
                "by side: strided4 forward 96 -> 117, weight gradient 82 -> 105, stride-2 grouped forward 38 -> 60 GF/s; "
                "weight gradients with channel lanes there (PoCL 3.0, znver3 on an AVX-512 Zen 4): pointwise 68 -> 153, "
                "dense 171 -> 210 GF/s; sliding tap tiles there, side by side: filterbank K251 input gradient "
                "168 -> 111 ms, weight gradient 100 -> 80 ms, depthwise K31 forward 36.7 -> 21.1 ms",
    "cpu": "same as cpu-avx2, untuned: no CPU with vectors narrower than 8 floats has run it",
    "cpu-implicit-simd": "measured with Intel's OpenCL CPU runtime 2026.22 on a 2-core AVX-512 AMD EPYC (Zen 4), side "
                         "by side against the cpu-avx512 row it starts from, forward vs torch (others' jobs loading the "
                         "machine, which slows torch more): strided 1.01 -> 1.22x, strided4 1.19 -> 1.37x (deep strided: "
                         "4 x 4 tiles over the phase-split copy), pointwise 1.62 -> 1.83x, dense 1.37 -> 1.46x (deep 8 x 2 "
                         "tiles); no GPU row, nor scalar work-items, came near; its sliding taps measured with "
                         "runtime 2026.22 on a 2-core Zen 5 EPYC, side by side: filterbank weight gradient "
                         "51 -> 16 ms; short-row gradients in columns there, (32, 720, 5) K5 weight gradient "
                         "7.8 -> 2.7 ms, input gradient 7.7 -> 2.8 ms",
    "nvidia-gpu": "from NVIDIA's CUDA C++ best practices guide (warps of 32, 255 registers per thread, 48 KiB shared "
                  "memory per block), never timed on an NVIDIA GPU; Oclgrind instruction counts only",
    "amd-gpu": "from AMD's GCN/RDNA optimisation guides (wavefronts of 64 or 32, 64 KiB LDS per work-group), never "
               "timed on an AMD GPU; Oclgrind instruction counts only",
    "intel-gpu": "from Intel's oneAPI GPU optimisation guide (SIMD8-32 sub-groups, 4 KiB registers per EU thread, "
                 "64 KiB SLM), never timed on an Intel GPU; Oclgrind instruction counts only",
    "gpu": "same as nvidia-gpu (warps of 32 suit every vendor's SIMD width); checked on Oclgrind only",
    "accelerator": "untuned: local-strategy tiles never timed on an accelerator; checked for correctness only",
    "other": "no row (the safe default): a device of no type clconv knows (CL_DEVICE_TYPE_CUSTOM)",
}
