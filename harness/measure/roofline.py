"""The roofline: FLOPs per training sample from the spec, and what fraction of the machine's
GEMM throughput a variant's training reaches. Pure arithmetic on the spec and on a calibration
result; how that throughput is measured is harness/measure/calibrate.py.

A variant's `roofline_fraction` is its achieved FLOP/s (samples/s x FLOPs per sample) over the
calibration's `peak_gflops`, the largest of the measured GEMM throughputs. The calibration times
exactly the matrix products of one training step (`gemm_shapes`) and nothing else, so a
fraction of 1.0 means the variant ran as if its step were only GEMMs at the speed this machine
does them.
"""

from __future__ import annotations

from itertools import pairwise

from variants.base import ModelSpec


def gemm_shapes(spec: ModelSpec, batch_size: int) -> list[tuple[str, int, int, int]]:
    """The matrix products of one training step as (role, m, k, n) for an (m,k) @ (k,n) product,
    in the order the step runs them. Layer l maps `fan_in` to `fan_out`:
    forward   z_l  = a_l @ W_l        (B, in) @ (in, out)
    weight    dW_l = a_l.T @ dz_l     (in, B) @ (B, out)
    input     da_l = dz_l @ W_l.T     (B, out) @ (out, in), for every layer but the first
    """
    layers = list(pairwise(spec.layer_sizes))
    shapes = [("forward", batch_size, fan_in, fan_out) for fan_in, fan_out in layers]
    for index in range(len(layers) - 1, -1, -1):
        fan_in, fan_out = layers[index]
        shapes.append(("weight_grad", fan_in, batch_size, fan_out))
        if index > 0:
            shapes.append(("input_grad", batch_size, fan_out, fan_in))
    return shapes


def flops_per_sample(spec: ModelSpec) -> int:
    """Training FLOPs per sample: the matrix products of the forward and the backward pass.

    A dense layer with `in` inputs and `out` outputs costs 2*in*out FLOPs per sample (one
    multiply and one add per weight) in each product it takes part in:
    - forward   z = a @ W:        2*in*out
    - backward  dW = a.T @ dz:    2*in*out
    - backward  da = dz @ W.T:    2*in*out, except in the first layer, whose input is the data
      and needs no gradient.
    So the total is 3x the forward FLOPs minus 2*input_size*hidden[0]; for 784-512-256-10 that
    is 3 * 1,070,080 - 802,816 = 2,407,424.

    Elementwise work is not counted: bias adds, ReLU and its mask, softmax cross-entropy, the
    bias gradients and the optimizer update are O(in + out) per sample (the update is O(params)
    per step, not per sample), a few percent of the GEMMs at these widths, and they run at
    memory speed, not at the GEMM roofline this count is compared against.
    """
    shapes = gemm_shapes(spec, batch_size=1)
    return sum(2 * m * k * n for _, m, k, n in shapes)


def roofline_fraction(
    samples_per_second: float, flops_per_sample: int, peak_gflops: float
) -> float:
    """Achieved FLOP/s over the measured peak: 1.0 means the variant's step cost only its GEMMs."""
    return samples_per_second * flops_per_sample / (peak_gflops * 1e9)
