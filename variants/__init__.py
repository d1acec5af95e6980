"""The registry: variant name -> "module:Class", imported only when asked for, so the NumPy
variant runs without importing TensorFlow."""

from __future__ import annotations

import importlib

from variants.base import Variant

REGISTRY: dict[str, str] = {
    "numpy_scratch": "variants.numpy_scratch:NumpyScratch",
    "tf1_graph": "variants.tf1_graph:TF1Graph",
    "tf1_lowlevel": "variants.tf1_lowlevel:TF1LowLevel",
    "tf2_eager": "variants.tf2_tape:TF2Eager",
    "tf2_function": "variants.tf2_tape:TF2Function",
    "tf2_function_xla": "variants.tf2_tape:TF2FunctionXLA",
    "tf2_tfdata": "variants.tf2_tape:TF2TFData",
    "tf2_epoch_function": "variants.tf2_epoch:TF2EpochFunction",
    "tf2_epoch_function_xla": "variants.tf2_epoch:TF2EpochFunctionXLA",
    "keras_sequential": "variants.keras_sequential:KerasSequential",
    "keras_functional": "variants.keras_functional:KerasFunctional",
    "keras_subclass": "variants.keras_subclass:KerasSubclass",
    "keras_train_on_batch": "variants.keras_train_on_batch:KerasTrainOnBatch",
    "keras_fit_spe": "variants.keras_fit_fast:KerasFitSPE",
    "keras_fit_jit": "variants.keras_fit_fast:KerasFitJIT",
    "tf_keras_sequential": "variants.tf_keras_sequential:TFKerasSequential",
    "tf2_multiworker": "variants.tf2_multiworker:TF2MultiWorker",
    "keras_mirrored": "variants.keras_mirrored:KerasMirrored",
    "tf_keras_multiworker": "variants.tf_keras_multiworker:TFKerasMultiWorker",
}

# Wide & deep (variants/base.py WideDeepSpec): each level under the name of its MLP variant, so
# that a level's two files can be held side by side. Sequential is here to say it cannot.
WIDE_DEEP: dict[str, str] = {
    "numpy_scratch": "variants.wide_deep.numpy_scratch:NumpyScratch",
    "tf1_graph": "variants.wide_deep.tf1_graph:TF1Graph",
    "tf2_function": "variants.wide_deep.tf2_tape:TF2Function",
    "tf2_epoch_function_xla": "variants.wide_deep.tf2_epoch:TF2EpochFunctionXLA",
    "keras_sequential": "variants.wide_deep.keras_sequential:KerasSequential",
    "keras_functional": "variants.wide_deep.keras_functional:KerasFunctional",
    "keras_subclass": "variants.wide_deep.keras_subclass:KerasSubclass",
    "keras_fit_jit": "variants.wide_deep.keras_fit_fast:KerasFitJIT",
}

# The variants of each task (variants/base.py ModelSpec.task), by the name `--task` gives it.
TASKS: dict[str, dict[str, str]] = {"mlp": REGISTRY, "wide-deep": WIDE_DEEP}

REFERENCE = "numpy_scratch"  # in every task

# What `mlpbench run` runs without --variants: every level once, in the form its own guide
# teaches as the way to train (TF2 core: the step in `tf.function`, "Better performance with
# tf.function"; eager is the debugging form, first on the ladder), and all three Keras APIs,
# whose identical computations give the suite its A/A resolution (IDENTICAL, below). The
# ladders' other rungs come with `--variants all`.
DEFAULT: dict[str, tuple[str, ...]] = {
    "mlp": (
        "numpy_scratch",
        "tf1_graph",
        "tf2_function",
        "keras_sequential",
        "keras_functional",
        "keras_subclass",
        "tf_keras_sequential",
        "tf2_multiworker",
    ),
    "wide-deep": tuple(WIDE_DEEP),
}

# Variants that run the same computation and differ only in how the model is written: a built
# Keras 3 `Sequential` delegates `call` to a `Functional` inside it, and the subclass stacks the
# same layers (on wide & deep, the subclass' `call` wires the Functional model's layers). Any
# speed difference among them is the suite's noise: its A/A control.
IDENTICAL: dict[str, tuple[tuple[str, ...], ...]] = {
    "mlp": (("keras_sequential", "keras_functional", "keras_subclass"),),
    "wide-deep": (("keras_functional", "keras_subclass"),),
}


def registry(task: str = "mlp") -> dict[str, str]:
    """The variants of `task` by name."""
    return TASKS[task]


# What the Variant protocol (variants/base.py) asks of a class, read from it so the two cannot
# drift apart: its methods, and its class attributes (name, api_level).
REQUIRED_METHODS = tuple(
    n for n, v in vars(Variant).items() if callable(v) and not n.startswith("_")
)
REQUIRED_ATTRIBUTES = tuple(Variant.__annotations__)


class VariantLoadError(Exception):
    """A variant name or `module:Class` path that cannot be used; the message says why."""


def resolve(name_or_path: str, task: str = "mlp") -> str:
    """A registry name of `task` or a user's `package.module:Class` -> its `module:Class` path."""
    if name_or_path in TASKS[task]:
        return TASKS[task][name_or_path]
    if ":" in name_or_path:
        return name_or_path
    known = ", ".join(TASKS[task])
    raise VariantLoadError(
        f"unknown variant {name_or_path!r}: use one of {known}, or a 'package.module:Class' path"
    )


def load(name_or_path: str) -> type:
    """Import the variant class and check that it follows the Variant protocol."""
    path = resolve(name_or_path)
    module_name, _, class_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure is the user's module, not ours
        raise VariantLoadError(
            f"cannot import {module_name!r} for variant {name_or_path!r}: "
            f"{exc.__class__.__name__}: {exc}"
        ) from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise VariantLoadError(f"module {module_name!r} has no class {class_name!r}")
    missing = [m for m in REQUIRED_METHODS if not callable(getattr(cls, m, None))]
    missing += [a for a in REQUIRED_ATTRIBUTES if not isinstance(getattr(cls, a, None), str)]
    if missing:
        raise VariantLoadError(
            f"{path} does not follow the Variant protocol (variants/base.py): "
            f"missing {', '.join(missing)}"
        )
    return cls
