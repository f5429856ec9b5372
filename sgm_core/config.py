"""Frozen, typed configuration: one dataclass per concern, each with a JSON round-trip.

Defaults are tuned for 2 CPU cores and standardised data (zero mean, unit variance), so that
`sgm train DATA` followed by `sgm sample` gives good samples in about a minute.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError
from .limits import MAX_BATCH, MAX_DEPTH, MAX_JSON_BYTES, MAX_NET_PARAMS, MAX_STEPS, MAX_WIDTH

T = TypeVar("T")

MAX_DATA_DIM = 3  # the widest data a net is sized for (2D and 3D share every network)
MAX_FREQUENCIES = 16  # sigma features: 2^15 pi/2 already aliases every ladder level
MAX_LEVELS = 10_000  # sigma-ladder levels (annealed Langevin runs steps x levels)
MAX_PROJECTIONS = 1024  # sliced score matching directions per sample
SIGMA_BOUNDS = (1e-6, 1e6)  # noise std in standardised units: sigma^2 and 1/sigma^2 stay finite in float32
BETA_BOUNDS = (1e-6, 1e4)  # VP-SDE beta: exp(-integral of beta) underflows to 0 beyond this, harmlessly
MAX_STEP_SIZE = 1e6  # Langevin epsilon; larger ones only produce Inf
MAX_NOISE_SCALE = 100.0
MAX_SNR = 100.0  # PC corrector signal-to-noise ratio (0.16 is the image default)
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a 64-bit seed
MAX_TIMESTEPS = 100_000  # DDPM chain length (1000 is the paper's)
BETA_SCHEDULES = ("linear", "cosine")
# fm / ot-fm training times: uniform (Lipman et al. 2023) | logit-normal, t = sigmoid(z), z ~ N(0, 1)
# (Esser et al. 2024, sec. 3.1: more weight on the middle of the path, where the velocity is hardest)
TIME_SAMPLINGS = ("uniform", "logit-normal")


def whole_number(value: object, label: str, lo: int, hi: int) -> int:
    """`value` as an int in [lo, hi], or one ConfigError sentence (bools, "abc" and 1e400 refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{label} must be a whole number, not {_shown(value)}")
    if not lo <= value <= hi:
        raise ConfigError(f"{label} must be from {lo:,} to {hi:,}, not {_shown(value)}")
    return int(value)


def finite_number(value: object, label: str, lo: float, hi: float, *, open_lo: bool = False) -> float:
    """`value` as a finite float in [lo, hi] ((lo, hi] with `open_lo`), or one ConfigError sentence."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{label} must be a number, not {_shown(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond the float range
        number = math.inf
    if not (math.isfinite(number) and (lo < number if open_lo else lo <= number) and number <= hi):
        low = f"above {lo:g}" if open_lo else "non-negative" if lo == 0 else f"at least {lo:g}"
        high = "" if hi == math.inf else f" and at most {hi:g}"
        raise ConfigError(f"{label} must be {low}{high}, not {_shown(value)}")
    return number


def checked_int(owner: object, name: str, lo: int, hi: int) -> None:
    """`whole_number` on a dataclass field, stored back as a plain int (numpy ints from the GUI too)."""
    object.__setattr__(owner, name, whole_number(getattr(owner, name), f"{_label(owner)} {name}", lo, hi))


def checked_float(owner: object, name: str, lo: float, hi: float, *, open_lo: bool = False) -> None:
    """`finite_number` on a dataclass field, stored back as a float."""
    value = finite_number(getattr(owner, name), f"{_label(owner)} {name}", lo, hi, open_lo=open_lo)
    object.__setattr__(owner, name, value)


CLASS_FEATURES = 16  # width of a class embedding (2-64 classes; the MLP's first layer mixes it in)
ACTIVATION_NAMES = ("silu", "softplus", "tanh", "elu", "relu")  # the nets' nonlinearities (sgm_core.nets.ACTIVATIONS)


def checked_choice(owner: object, name: str, choices: Any) -> None:
    """Refuse a name that is not one of `choices` (a registry or a tuple of strings)."""
    value = getattr(owner, name)
    if not isinstance(value, str) or value not in choices:
        label = _label(owner) if name == "name" else f"{_label(owner)} {name}"
        raise ConfigError(f"unknown {label} {_shown(value)}; choose one of {', '.join(choices)}")


def _label(owner: object) -> str:
    return type(owner).__name__.removesuffix("Config").lower()


def _shown(value: object) -> str:
    """A value as a message can show it: short, on one line."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def parse_json(blob: bytes, what: str) -> Any:
    """Parse a JSON document of at most MAX_JSON_BYTES; any failure is one ConfigError sentence.

    Callers check the size on disk (or in the zip directory) before reading; this is the last guard."""
    if len(blob) > MAX_JSON_BYTES:
        raise ConfigError(f"{what} is {len(blob):,} bytes; the most this program reads is {MAX_JSON_BYTES:,}")
    try:
        return json.loads(blob.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} is not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    except RecursionError as exc:
        raise ConfigError(f"{what} is nested too deeply to be a settings file") from exc
    except (ValueError, MemoryError) as exc:  # e.g. a 5,000-digit integer
        raise ConfigError(f"{what} holds a value this program cannot read") from exc


def parse_toml(text: str, what: str) -> dict[str, Any]:
    """Parse TOML text; any failure is one ConfigError sentence: a syntax error, nesting deep enough
    to exhaust tomllib's recursion (a few thousand '['), or an integer over Python's 4,300 digits."""
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{what} is nested too deeply for a settings file (no setting needs more than a few levels)") from None
    except (ValueError, MemoryError):
        raise ConfigError(f"{what} holds a value this program cannot read") from None


def _from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build `cls` from a dict, refusing unknown keys (a foreign or newer file) with one sentence."""
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} setting(s): {', '.join(unknown)}")
    try:
        return cls(**data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid {cls.__name__}: {exc}") from exc


def check_format(meta: object, file_format: str, version: int, what: str) -> dict[str, Any]:
    """The parsed JSON head of one of our files: an object of `file_format` at `version`."""
    if not isinstance(meta, dict) or meta.get("format") != file_format:
        raise ConfigError(f"{what} is not a Score Field Playground {file_format.rsplit('-', 1)[-1]} file")
    found = meta.get("version")
    if isinstance(found, bool) or not isinstance(found, int):
        raise ConfigError(f"{what} has no version number (found {_shown(found)}); this program reads version {version}")
    if found != version:
        raise ConfigError(f"{what} has format version {found}; this program reads version {version}")
    return meta


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "score"  # "score": s_theta(x, sigma) directly; "energy": s = -grad_x E_theta(x, sigma)
    width: int = 128  # hidden units per layer
    depth: int = 3  # hidden layers
    activation: str = "silu"  # silu | softplus | tanh | elu | relu (energy nets need a smooth one)
    n_frequencies: int = 4  # sinusoidal features of log(sigma); more alias between ladder levels (measured)
    classes: tuple[str, ...] = ()  # class-conditional net: the data's class names in index order (): unconditional

    def __post_init__(self) -> None:
        from .datasets import check_classes  # datasets imports nothing of this module's users
        from .errors import DataError

        if isinstance(self.classes, list | tuple) and len(self.classes) == 0:
            object.__setattr__(self, "classes", ())  # JSON gives a list
        else:
            try:
                object.__setattr__(self, "classes", check_classes(self.classes))
            except DataError as exc:
                raise ConfigError(f"model classes: {exc}") from exc
        checked_choice(self, "kind", ("score", "energy"))
        checked_int(self, "width", 1, MAX_WIDTH)
        checked_int(self, "depth", 1, MAX_DEPTH)
        checked_choice(self, "activation", ACTIVATION_NAMES)
        checked_int(self, "n_frequencies", 0, MAX_FREQUENCIES)
        if self.kind == "energy" and self.activation == "relu":
            raise ConfigError("an energy net needs a smooth activation (its score is a gradient); not relu")
        n = self.n_params(MAX_DATA_DIM)
        if n > MAX_NET_PARAMS:
            raise ConfigError(f"a net of width {self.width} and depth {self.depth} has {n:,} parameters; "
                              f"the most this program builds is {MAX_NET_PARAMS:,}")

    @property
    def n_classes(self) -> int:
        """Classes a class-conditional net tells apart (0: unconditional); it also learns a null class."""
        return len(self.classes)

    def n_params(self, dim: int, conditional: bool = True) -> int:
        """Trainable parameters of this MLP on D-dimensional data (what `nets._mlp` builds), with
        the class embedding of a class-conditional net (CLASS_FEATURES per class + null)."""
        n_class = CLASS_FEATURES if self.n_classes else 0
        n_in = dim + (2 * self.n_frequencies + 1 if conditional else 0) + n_class
        n_out = 1 if self.kind == "energy" else dim
        w = self.width
        embed = (self.n_classes + 1) * n_class
        return embed + (n_in + 1) * w + (self.depth - 1) * (w + 1) * w + (w + 1) * n_out


@dataclass(frozen=True)
class NoiseConfig:
    sigma_min: float = 0.01  # smallest noise std (standardised units); NCSN ladder bottom, SDE sigma(0)
    sigma_max: float = 3.0  # largest noise std; should reach the data's diameter (Song & Ermon 2020)
    n_levels: int = 16  # geometric ladder size for ncsn / annealed Langevin
    sigma: float = 0.1  # the single noise level of dsm / dsm-eps and plain Langevin
    beta_min: float = 0.1  # VP-SDE beta(0)
    beta_max: float = 20.0  # VP-SDE beta(1)
    timesteps: int = 1000  # DDPM's T: steps of the discrete chain (Ho et al. 2020)
    schedule: str = "linear"  # DDPM's beta schedule: linear (Ho et al. 2020) | cosine (Nichol & Dhariwal 2021)
    t_sampling: str = "uniform"  # fm / ot-fm training times: uniform | logit-normal (Esser et al. 2024)

    def __post_init__(self) -> None:
        for name in ("sigma_min", "sigma_max", "sigma"):
            checked_float(self, name, *SIGMA_BOUNDS)
        checked_int(self, "n_levels", 2, MAX_LEVELS)
        for name in ("beta_min", "beta_max"):
            checked_float(self, name, *BETA_BOUNDS)
        checked_int(self, "timesteps", 1, MAX_TIMESTEPS)
        checked_choice(self, "schedule", BETA_SCHEDULES)
        checked_choice(self, "t_sampling", TIME_SAMPLINGS)
        if not self.sigma_min < self.sigma_max:
            raise ConfigError("need 0 < sigma_min < sigma_max")
        if not self.beta_min < self.beta_max:
            raise ConfigError("need 0 < beta_min < beta_max")


@dataclass(frozen=True)
class LossConfig:
    name: str = "ncsn"  # sm | ssm | ssm-vr | dsm | dsm-eps | ncsn | ve-sde | vp-sde | fm | ot-fm | ddpm | edm
    n_projections: int = 1  # sliced score matching: random directions per sample
    projection: str = "rademacher"  # sliced score matching: "gaussian" or "rademacher" directions
    source: str = ""  # flows between two distributions: x_1 drawn from this preset or file, not N(0, I) ("": noise)

    def __post_init__(self) -> None:
        from .losses import LOSSES  # losses imports this module

        checked_choice(self, "name", LOSSES)
        checked_int(self, "n_projections", 1, MAX_PROJECTIONS)
        checked_choice(self, "projection", ("gaussian", "rademacher"))
        if not isinstance(self.source, str):
            raise ConfigError(f"loss source must be a preset name or a file path, not {_shown(self.source)}")
        if self.source and not LOSSES[self.name].process_type.transports:
            raise ConfigError(f"--source needs --loss fm or ot-fm (a flow between two distributions); "
                              f"{self.name} starts from Gaussian noise")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 10000  # Adam steps (~30 s on 2 cores; 5000 left 25gaussians at 70% on-mode, measured)
    batch: int = 512  # points per step, drawn fresh from the dataset
    lr: float = 5e-3  # Adam learning rate, cosine-decayed to lr/10 over `steps` (2e-3 learned 3x slower, measured)
    ema: float = 0.999  # EMA decay of the weights used for sampling (0 disables)
    grad_clip: float = 1.0  # global gradient-norm clip (0 disables)
    seed: int = 0  # seeds the model init, the data draws and the loss noise
    device: str = "auto"  # auto (cuda -> mps -> cpu) | cpu | cuda | mps
    cfg_dropout: float = 0.1  # class-conditional nets: P(label -> null class) per draw (Ho & Salimans 2022 use 0.1-0.2)

    def __post_init__(self) -> None:
        checked_int(self, "steps", 0, MAX_STEPS)
        checked_int(self, "batch", 1, MAX_BATCH)
        checked_float(self, "lr", 0.0, math.inf, open_lo=True)  # huge rates diverge, which training handles
        checked_float(self, "ema", 0.0, 1.0)
        if self.ema == 1.0:
            raise ConfigError("train ema must be below 1 (1 would never update the sampling weights)")
        checked_float(self, "grad_clip", 0.0, math.inf)
        checked_int(self, "seed", -MAX_SEED - 1, MAX_SEED)
        checked_choice(self, "device", ("auto", "cpu", "cuda", "mps"))
        checked_float(self, "cfg_dropout", 0.0, 1.0)
        if self.cfg_dropout == 1.0:
            raise ConfigError("train cfg_dropout must be below 1 (1 would never train the class-conditional score)")


@dataclass(frozen=True)
class SamplerConfig:
    name: str = "annealed"  # langevin | annealed | sde | pc | ode | euler | heun | ddpm | ddim
    steps: int = 0  # langevin: total steps; annealed: steps per level; sde/pc/ode: time steps (0 = default)
    step_size: float = 0.0  # langevin: epsilon; annealed: epsilon at sigma_min (0 = default)
    snr: float = 0.08  # PC corrector signal-to-noise ratio (0.16, the image default, over-steps in 2D: measured)
    denoise: bool = True  # final Tweedie step x + sigma^2 s(x, sigma) removes the last noise
    noise_scale: float = 1.0  # Langevin noise multiplier: 1 samples; 0 is gradient ascent (collapses onto modes)
    eta: float = 0.0  # ddim: 0 is deterministic DDIM, 1 is DDPM's ancestral noise (Song, Meng & Ermon 2021)

    def __post_init__(self) -> None:
        from .samplers import SAMPLERS  # samplers imports this module

        checked_choice(self, "name", SAMPLERS)
        checked_int(self, "steps", 0, MAX_STEPS)
        checked_float(self, "step_size", 0.0, MAX_STEP_SIZE)
        checked_float(self, "snr", 0.0, MAX_SNR)
        if not isinstance(self.denoise, bool):
            raise ConfigError(f"sampler denoise must be true or false, not {_shown(self.denoise)}")
        checked_float(self, "noise_scale", 0.0, MAX_NOISE_SCALE)
        checked_float(self, "eta", 0.0, 1.0)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run; written to RUN_DIR/config.json."""

    data: str = "8gaussians"  # preset name or file path
    model: ModelConfig = field(default_factory=ModelConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(data: dict[str, Any]) -> RunConfig:
        if not isinstance(data, dict):
            raise ConfigError("run config must be a JSON object")
        parts = {"model": ModelConfig, "noise": NoiseConfig, "loss": LossConfig, "train": TrainConfig}
        unknown = sorted(set(data) - set(parts) - {"data"})
        if unknown:
            raise ConfigError(f"unknown run setting(s): {', '.join(unknown)}")
        kwargs: dict[str, Any] = {k: _from_dict(cls, data.get(k, {})) for k, cls in parts.items()}
        source = data.get("data", "8gaussians")
        if not isinstance(source, str):
            raise ConfigError(f"the run's data must be a name or a path, not {_shown(source)}")
        return RunConfig(data=source, **kwargs)

    def with_(self, **changes: Any) -> RunConfig:
        return replace(self, **changes)


def fresh_model_reason(old: RunConfig, new: RunConfig, old_dim: int, new_dim: int) -> str | None:
    """Why `new` cannot go on training the model of `old` (a sentence fragment), or None when it
    can: the net's shape, the loss (its target and inputs) and the data's dimension must stay;
    learning rate, batch, steps, EMA, clipping and the noise settings only shape the next steps."""
    if old_dim != new_dim:
        return f"the data changed from {old_dim}D to {new_dim}D"
    if old.model != new.model:
        return "the network's shape changed"
    if old.loss.name != new.loss.name:
        return f"the loss changed from {old.loss.name} to {new.loss.name}"
    if old.train.device != new.train.device:
        return "the device changed"
    return None


def sampler_config_from_json(data: dict[str, Any]) -> SamplerConfig:
    return _from_dict(SamplerConfig, data)


SETTINGS_SUFFIXES = (".toml", ".json")


def read_settings_file(path: str | Path) -> dict[str, Any]:
    """A settings file for `sgm train --config`: TOML or JSON with RunConfig's sections
    (`data`, `[model]`, `[noise]`, `[loss]`, `[train]`), as a plain dict; the configs check the
    values when they are built. Any failure is one ConfigError sentence."""
    path = Path(path)
    if path.suffix.lower() not in SETTINGS_SUFFIXES:
        raise ConfigError(f"--config must be a .toml or .json file, not {path.name}")
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise ConfigError(f"{path.name} is larger than {MAX_JSON_BYTES:,} bytes, so not a settings file")
        blob = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"no settings file {str(path)!r}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".json":
        data = parse_json(blob, path.name)
    else:
        try:
            text = blob.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{path.name} is not UTF-8 text") from None
        data = parse_toml(text, path.name)
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name} must hold a table of settings, not {type(data).__name__}")
    sections = {"data", "model", "noise", "loss", "train"}
    unknown = sorted(set(data) - sections)
    if unknown:
        raise ConfigError(f"{path.name}: unknown section(s) {', '.join(unknown)}; use {', '.join(sorted(sections))}")
    for name in sections - {"data"}:
        if not isinstance(data.get(name, {}), dict):
            raise ConfigError(f"{path.name}: [{name}] must be a table of settings")
    return data
