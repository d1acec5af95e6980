"""The roofline: what a training step must do at least, from the spec, and what fraction of
that floor a variant's training reaches. Pure arithmetic on the spec and on a calibration
result; how the machine's GEMM throughput and memory bandwidth are measured is
harness/measure/calibrate.py.

Two fractions, both achieved speed over a floor:
- `gemm_fraction`: achieved FLOP/s (samples/s x FLOPs per sample) over the calibration's
  `peak_gflops`. The calibration times exactly the matrix products of one training step
  (`gemm_shapes`), so 1.0 means the variant ran as if its step were only its GEMMs. No real
  step reaches it: the rest of the step (bias, activations, loss, optimizer) costs time too.
- `floor_fraction`: the step's floor is its GEMMs at the measured peak plus the bytes every
  other part of the step must move at least once (`step_bytes`) at the measured memory
  bandwidth (`calibration.bandwidth_gbs`). 1.0 means the variant ran at that floor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from variants.base import ModelSpec, WideDeepSpec


def gemm_shapes(spec: ModelSpec, batch_size: int) -> list[tuple[str, int, int, int]]:
    """The matrix products of one training step as (role, m, k, n) for an (m,k) @ (k,n) product,
    in the order the step runs them. Layer l maps `fan_in` to `fan_out`:
    forward   z_l  = a_l @ W_l        (B, in) @ (in, out)
    weight    dW_l = a_l.T @ dz_l     (in, B) @ (B, out)
    input     da_l = dz_l @ W_l.T     (B, out) @ (out, in), for the part of a layer's input
                                      that is not data: not the first layer's; on wide & deep
                                      not the wide input's part of the main head's either
    """
    layers = spec.dense_layers
    shapes = [("forward", batch_size, fan_in, fan_out) for fan_in, fan_out in layers]
    data_width = [spec.input_size] + [0] * (len(layers) - 1)
    if isinstance(spec, WideDeepSpec):  # its main head reads the wide input beside the deep path
        data_width[len(spec.hidden)] = spec.wide_size
    for index in range(len(layers) - 1, -1, -1):
        fan_in, fan_out = layers[index]
        shapes.append(("weight_grad", fan_in, batch_size, fan_out))
        if fan_in > data_width[index]:
            shapes.append(("input_grad", batch_size, fan_out, fan_in - data_width[index]))
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
    bias gradients and the optimizer update are few FLOPs per byte and run at memory speed, not
    at the GEMM roofline this count is compared against; `step_bytes` counts their bytes.
    """
    shapes = gemm_shapes(spec, batch_size=1)
    return sum(2 * m * k * n for _, m, k, n in shapes)


def gemm_fraction(samples_per_second: float, flops_per_sample: int, peak_gflops: float) -> float:
    """Achieved FLOP/s over the measured peak: 1.0 means the variant's step cost only its GEMMs."""
    return samples_per_second * flops_per_sample / (peak_gflops * 1e9)


# Arrays of one element per parameter that an optimizer's update reads and writes, once each.
# SGD: w -= lr * g. Momentum: v = m * v - lr * g; w += v. Adam: m, v from g, then w from both.
OPTIMIZER_ARRAYS = {
    "sgd": (("w", "g"), ("w",)),
    "momentum": (("w", "g", "v"), ("w", "v")),
    "adam": (("w", "g", "m", "v"), ("w", "m", "v")),
}
ITEM_BYTES = {"float32": 4, "float64": 8}
STEP_BYTES_MODEL = "dense-relu-softmax-xent, one pass per part, v1"


def step_bytes(spec: ModelSpec, batch_size: int, optimizer: str) -> dict[str, Any]:
    """The bytes the non-GEMM parts of one training step must move, at least once each, in
    `spec.dtype`: per sample (they grow with the batch) and per step (they do not).

    The model, for layer widths d_0 (input) .. d_L (logits), hidden widths h = d_1 .. d_{L-1},
    s bytes per element (4 in float32, 8 in float64), P parameters:
    per sample
      forward_bias_relu  2 s sum(h)   each hidden layer's bias add and ReLU in one pass: read
                                      z = a @ W, write a = relu(z + b)
      loss               2 s d_L      the output bias add, softmax cross-entropy and its
                                      gradient in one pass: read z, write d logits
      backward_relu      3 s sum(h)   each hidden layer's ReLU gradient: read da (the input
                                      gradient's GEMM wrote it) and a, write dz; the bias
                                      gradient is summed from dz in the same pass
    per step
      bias               2 s sum(d_1..d_L)  read the bias vectors, write their gradients
      optimizer          (reads + writes) s P  OPTIMIZER_ARRAYS: SGD 3, momentum 5, Adam 7
                                      arrays of P elements (Adam: 28 bytes per float32
                                      parameter, 56 per float64 one)

    Assumptions, each making the count a floor rather than an estimate:
    - the GEMMs' own operands and outputs (the batch, the kernels, z, da, dW) are their cost,
      timed by the GEMM calibration, and not counted again here;
    - each part is one pass that touches every element it needs once: elementwise work inside
      a part is fused, parts are not fused with the GEMMs or with each other (a bias add and
      ReLU fused into the GEMM's output, as oneDNN can, would move less);
    - the labels (one integer per sample), the loss value and scalars such as the learning rate
      are not counted: a few bytes per sample or per step.
    The floor is then timed at the memory bandwidth the calibration measured on arrays much
    larger than the last-level cache. A step whose arrays stay in cache (784-512-256-10 in
    float32 holds about 9 MB of parameters, gradients and Adam moments) can move them faster
    than that, so a `floor_fraction` above 1 is possible: it says the step ran from cache.
    """
    s = ITEM_BYTES[spec.dtype]
    hidden = sum(spec.hidden)
    logits = spec.num_classes * max(1, len(spec.outputs))  # wide & deep: two heads' logits
    reads, writes = OPTIMIZER_ARRAYS[optimizer]
    return {
        "model": STEP_BYTES_MODEL,
        "dtype": spec.dtype,
        "batch_size": batch_size,
        "optimizer": optimizer,
        "per_sample": {
            "forward_bias_relu": 2 * s * hidden,
            "loss": 2 * s * logits,
            "backward_relu": 3 * s * hidden,
        },
        "per_step": {
            "bias": 2 * s * sum(fan_out for _, fan_out in spec.dense_layers),
            "optimizer": (len(reads) + len(writes)) * s * spec.param_count,
        },
    }


def bytes_per_step(model: Mapping[str, Any], batch_size: int | None = None) -> int:
    """All the bytes of one step of `batch_size` samples (the model's own by default)."""
    batch = model["batch_size"] if batch_size is None else batch_size
    return batch * sum(model["per_sample"].values()) + sum(model["per_step"].values())


def floor_seconds(
    n_samples: int,
    flops_per_sample: int,
    peak_gflops: float,
    model: Mapping[str, Any],
    bandwidth_gbs: float,
) -> float:
    """The least time an epoch of `n_samples` can take: its GEMMs at the measured peak plus
    its bytes (`step_bytes`) at the measured bandwidth. The epoch's steps are full batches
    and a short last one, each paying the per-step bytes once."""
    steps = math.ceil(n_samples / model["batch_size"])
    memory = n_samples * sum(model["per_sample"].values()) + steps * sum(model["per_step"].values())
    return n_samples * flops_per_sample / (peak_gflops * 1e9) + memory / (bandwidth_gbs * 1e9)


def floor_fraction(
    samples_per_second: float,
    n_samples: int,
    flops_per_sample: int,
    peak_gflops: float,
    model: Mapping[str, Any],
    bandwidth_gbs: float,
) -> float:
    """The floor's time over the time taken, for epochs of `n_samples`: 1.0 means the variant's
    step cost only what its GEMMs and its memory traffic must."""
    floor = floor_seconds(n_samples, flops_per_sample, peak_gflops, model, bandwidth_gbs)
    return samples_per_second * floor / n_samples


def floor_parts(
    batch_size: int,
    flops_per_sample: int,
    peak_gflops: float,
    model: Mapping[str, Any],
    bandwidth_gbs: float,
) -> dict[str, float]:
    """The floor of one full step of `batch_size` samples, in seconds, by the parts a step's
    anatomy (harness/measure/anatomy.py) reports: its GEMMs at the measured peak, the optimizer's
    bytes and every other byte of the step (bias, activations, loss) at the measured bandwidth.
    Their sum is the whole-step floor `floor_seconds` charges per step."""
    per_step = dict(model["per_step"])
    optimizer = per_step.pop("optimizer", 0)
    other = batch_size * sum(model["per_sample"].values()) + sum(per_step.values())
    return {
        "gemm": batch_size * flops_per_sample / (peak_gflops * 1e9),
        "optimizer": optimizer / (bandwidth_gbs * 1e9),
        "other_math": other / (bandwidth_gbs * 1e9),
    }
