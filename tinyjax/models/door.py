"""The one door every model goes through: a preset name, an import reference or a flax module,
linen or nnx, becomes a ``Net``, one pure ``(init, apply)`` pair that the train step, evaluation,
checkpoints, inference and export all use.

The contract a model meets (``docs/your-model-and-data.md`` has a 15-line example of each kind):

- input ``float32 [B, H, W, C]``, the images normalised by the dataset's per-channel mean and
  std; output logits ``float32 [B, num_classes]``;
- a ``train`` keyword is passed only when ``__call__`` takes one (nnx modules are also switched
  with ``.train()`` / ``.eval()``); ``mask bool [B]`` only when it takes one (BatchNorm that
  leaves out padding rows: ``tinyjax.models.cnn.batch_norm``); a model without ``mask`` trains
  the last partial batch of an epoch at its true size instead;
- linen: parameters in ``params``, BatchNorm statistics in ``batch_stats``, dropout draws from
  the ``dropout`` rng; nnx: ``nnx.Param``, ``nnx.BatchStat`` and ``nnx.Rngs`` streams (reseeded
  every step from the run's key, so each seed and step draws its own masks).

Optional hooks, which the presets use and any user model may offer: a linen ``dtype`` field (mixed
precision, ``--dtype bfloat16``), a ``bn_axis_name`` field (BatchNorm statistics averaged over
``pmap``'s device axis), a ``num_classes`` field or constructor argument (set from the data), and
the linen methods ``frozen(path) -> bool`` (parameters the optimizer must not change) and
``init_from_data(params, images) -> params`` (parameters set from normalised train images, as
``FastNet``'s patch whitening).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import os
import sys
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax import nnx


class ModelError(ValueError):
    """A model that cannot go through the door; the message names it and the fix."""


@dataclasses.dataclass(frozen=True, eq=False)
class Net:
    """A model as tinyjax trains it: ``init(key, x) -> variables`` and ``apply(variables, x,
    train=False, mask=None, mutable=False, rngs=None)`` with linen's semantics (``mutable``
    returns ``(logits, {"batch_stats": ...})``), for a linen module (``module``) or an nnx one
    (``factory``: a callable taking ``rngs``, or the nnx object itself in ``instance``).

    ``variables`` is ``{"params": ..., "batch_stats": ...}`` of plain nested dicts of arrays
    (``nnx.to_pure_dict``'s form for nnx). ``name`` is shown in run headers; ``reference``
    rebuilds the model in another process (a preset name or ``module:attr`` / ``/abs/file.py:attr``),
    None for a Python object that cannot be imported again."""

    name: str
    reference: str | None
    kind: str  # "linen" or "nnx"
    module: Any = None  # linen
    factory: Callable | None = None  # nnx: rngs -> module
    instance: Any = None  # nnx: an object passed in (keeps its own init)
    takes_train: bool = False
    takes_mask: bool = False
    graphdef: Any = None  # nnx, static
    rest: tuple = ()  # nnx: (treedef, ((shape, dtype), ...)) of the rng state, rebuilt every call

    def __hash__(self):
        return hash((self.kind, self.name, self.module, self.factory, id(self.instance), self.graphdef))

    def __eq__(self, other):
        return isinstance(other, Net) and (self.kind, self.name, self.module, self.factory, self.graphdef) == (
            other.kind, other.name, other.module, other.factory, other.graphdef) and self.instance is other.instance

    def __getattr__(self, name):
        """A linen model's fields (``dtype``, ``num_classes``, ...) read through the ``Net``."""
        module = self.__dict__.get("module")
        if module is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(module, name)

    # ------------------------------------------------------------------ the pure pair
    def init(self, key: jax.Array, x: jax.Array) -> dict:
        """``{"params", "batch_stats"}`` of a fresh model; ``x float32 [1, H, W, C]`` (its shape only
        matters). An nnx object passed in keeps its own weights whatever ``key`` is."""
        if self.kind == "linen":
            variables = dict(self.module.init(key, x))
            return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}
        module = self.instance if self.instance is not None else self.factory(nnx.Rngs(key))
        _, params, stats, _ = nnx.split(module, nnx.Param, nnx.BatchStat, ...)
        return {"params": nnx.to_pure_dict(params), "batch_stats": nnx.to_pure_dict(stats)}

    def apply(self, variables: dict, x: jax.Array, train: bool = False, mask: jax.Array | None = None,
              mutable=False, rngs: dict | None = None):
        kwargs = {**({"train": train} if self.takes_train else {}), **({"mask": mask} if self.takes_mask else {})}
        if self.kind == "linen":
            variables = {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}
            return self.module.apply(variables, x, mutable=mutable, rngs=rngs, **kwargs)
        treedef, specs = self.rest
        key = (rngs or {}).get("dropout")
        key = jax.random.key(0) if key is None else key
        leaves = [jax.random.fold_in(key, i) if jnp.issubdtype(dtype, jax.dtypes.prng_key) else jnp.zeros(shape, dtype)
                  for i, (shape, dtype) in enumerate(specs)]
        # flax 0.12: nnx.merge takes pure dicts; .train()/.eval() set deterministic / use_running_average.
        module = nnx.merge(self.graphdef, variables["params"], variables.get("batch_stats", {}),
                           jax.tree.unflatten(treedef, leaves))
        module.train() if train else module.eval()
        logits = module(x, **kwargs)
        if not mutable:
            return logits
        return logits, {"batch_stats": nnx.to_pure_dict(nnx.state(module, nnx.BatchStat))}

    # ------------------------------------------------------------------ hooks
    def _hook(self, name: str):
        return getattr(self.module, name, None) if self.kind == "linen" else None

    def frozen(self) -> Callable[[tuple], bool] | None:
        """The model's ``frozen(path)`` hook: parameter paths (tuples of keys) the optimizer leaves alone."""
        return self._hook("frozen")

    def init_from_data(self) -> Callable | None:
        """The model's ``init_from_data(params, images float32 [N, H, W, C]) -> params`` hook."""
        return self._hook("init_from_data")

    def field(self, name: str) -> bool:
        """Whether a linen model has the dataclass field ``name`` (a hook such as ``dtype``)."""
        return self.kind == "linen" and any(f.name == name for f in dataclasses.fields(self.module))

    def clone(self, **fields) -> "Net":
        """A linen model with its fields replaced (``dtype``, ``bn_axis_name``, ``num_classes``)."""
        return dataclasses.replace(self, module=self.module.clone(**fields))

    def synced(self, axis_name: str) -> "Net":
        """The model with BatchNorm statistics averaged over ``axis_name`` (``pmap``), through its
        ``bn_axis_name`` field; unchanged without one."""
        return self.clone(bn_axis_name=axis_name) if self.field("bn_axis_name") else self


def resolve(spec, *, num_classes: int | None = None, dtype: str = "float32") -> Net:
    """The ``Net`` of ``spec``: a preset name (``tinyjax.models.PRESETS``), an import reference
    ``package.module:attr`` or ``path/to/file.py:attr``, or a Python object: a ``flax.linen.Module``,
    an ``nnx.Module``, a class with no required arguments or a function returning either. A class or
    function that takes ``rngs`` is called with ``nnx.Rngs(key)`` at every init (each seed its own);
    one that takes ``num_classes`` is called with it. ``dtype`` other than float32 needs a linen
    ``dtype`` field.

    Raises:
      ModelError: an unknown name, a reference that does not import, an object that is no flax
        module, a constructor that raises, or a dtype the model cannot take.
    """
    from tinyjax.models import PRESETS

    reference = None
    if isinstance(spec, str):
        if ":" not in spec:
            if spec not in PRESETS:
                from tinyjax.common import closest

                raise ModelError(f"--model {spec!r} is unknown{closest(spec, PRESETS)}; choose one of "
                                 f"{sorted(PRESETS)}, or give an import reference, package.module:attr or "
                                 "path/to/file.py:attr")
            reference, spec = spec, PRESETS[spec]
        else:
            reference, spec = spec, import_reference(spec)
    elif inspect.isclass(spec) or inspect.isfunction(spec):
        reference = reference_of(spec)
    name = reference or type(spec).__name__
    net = _build(spec, name, reference, num_classes)
    if jnp.dtype(dtype) != jnp.float32:
        if not net.field("dtype"):
            raise ModelError(f"--dtype {dtype}: {name} ({type(net.module or net.instance).__name__}) supports only "
                             "float32; use --dtype float32, or give the module a linen dtype field (the "
                             "mixed-precision hook)")
        net = net.clone(dtype=jnp.dtype(dtype))
    return net


def _build(spec, name: str, reference: str | None, num_classes: int | None) -> Net:
    if isinstance(spec, nn.Module):
        if num_classes is not None and any(f.name == "num_classes" for f in dataclasses.fields(spec)) \
                and spec.num_classes != num_classes:
            spec = spec.clone(num_classes=num_classes)
        takes = _takes(spec.__call__)
        return Net(name, reference, "linen", module=spec, takes_train="train" in takes, takes_mask="mask" in takes)
    if isinstance(spec, nnx.Module):
        return _nnx(name, reference, None, spec)
    if callable(spec):
        target = spec.__init__ if inspect.isclass(spec) else spec
        params = inspect.signature(target).parameters
        kwargs = {"num_classes": num_classes} if "num_classes" in params and num_classes is not None else {}
        required = [p for p, v in params.items() if p not in ("self", "rngs", "num_classes") and v.default is
                    inspect.Parameter.empty and v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)]
        if required:
            raise ModelError(f"--model {name}: its constructor needs {required}; give a class or function "
                             "whose only required argument is rngs, or pass the module object")
        if "rngs" in params:
            return _nnx(name, reference, _Factory(spec, tuple(kwargs.items())), None)
        try:
            built = spec(**kwargs)
        except Exception as e:
            raise ModelError(f"--model {name}: building it raised {type(e).__name__}: {e}") from e
        if isinstance(built, (nn.Module, nnx.Module)):
            return _build(built, name, reference, num_classes)
    raise ModelError(f"--model {name}: a {type(spec).__name__} is not a flax module; give a flax.linen.Module, "
                     "an nnx.Module, or a class or function returning one")


@dataclasses.dataclass(frozen=True)
class _Factory:
    """An nnx constructor with its keyword arguments: ``factory(rngs) -> module`` (hashable)."""

    build: Callable
    kwargs: tuple

    def __call__(self, rngs):
        return self.build(rngs=rngs, **dict(self.kwargs))


def _nnx(name: str, reference: str | None, factory, instance) -> Net:
    try:
        module = instance if instance is not None else nnx.eval_shape(lambda: factory(nnx.Rngs(0)))
    except Exception as e:
        raise ModelError(f"--model {name}: building it raised {type(e).__name__}: {e}") from e
    graphdef, _, _, rest = nnx.split(module, nnx.Param, nnx.BatchStat, ...)
    for path, variable in nnx.to_flat_state(rest):
        if not isinstance(variable, (nnx.RngKey, nnx.RngCount)):
            raise ModelError(f"--model {name}: {'.'.join(map(str, path))} is an nnx.{type(variable).__name__}; "
                             "tinyjax trains nnx.Param, keeps nnx.BatchStat and reseeds nnx.Rngs, nothing else")
    leaves, treedef = jax.tree.flatten(rest)
    takes = _takes(type(module).__call__)
    return Net(name, reference, "nnx", factory=factory, instance=instance, takes_train="train" in takes,
               takes_mask="mask" in takes, graphdef=graphdef,
               rest=(treedef, tuple((tuple(x.shape), x.dtype) for x in leaves)))


def _takes(call) -> set[str]:
    """The keyword names ``call`` accepts among ``train`` and ``mask``."""
    params = inspect.signature(call).parameters
    return {p for p in ("train", "mask") if p in params}


def import_reference(reference: str):
    """The object named by ``package.module:attr`` or ``path/to/file.py:attr`` (``attr`` may be
    dotted).

    Raises:
      ModelError: the module or file does not import, or has no such attribute.
    """
    where, _, attr = reference.rpartition(":")
    try:
        if where.endswith(".py") or os.sep in where:
            path = os.path.abspath(where)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"no file {path}")
            module_name = "tinyjax_user_" + os.path.splitext(os.path.basename(path))[0]
            module = sys.modules.get(module_name)
            if module is None or getattr(module, "__file__", None) != path:
                spec = importlib.util.spec_from_file_location(module_name, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[module_name] = module
                spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as e:
        raise ModelError(f"--model {reference}: cannot import it ({type(e).__name__}: {e}); give "
                         "package.module:attr or path/to/file.py:attr") from None
    return obj


def reference_of(obj) -> str | None:
    """An import reference that finds ``obj`` (a class or function) again in a new process: its
    module's file made absolute for a script or a file outside ``sys.path``, else
    ``package.module:qualname``; None for a local class or function."""
    qualname = getattr(obj, "__qualname__", "")
    if "<locals>" in qualname or "<lambda>" in qualname:
        return None
    module_name = getattr(obj, "__module__", None)
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if module_name == "__main__" or (module_name or "").startswith("tinyjax_user_"):
        return f"{os.path.abspath(path)}:{qualname}" if path else None
    return f"{module_name}:{qualname}" if module_name else None
