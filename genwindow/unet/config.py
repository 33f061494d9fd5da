"""The configuration of one training run, and the named presets.

One flat frozen dataclass, so that a run's ``config.json`` reads as a table and a rerun can
check that it resumes the same run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from genwindow.errors import ConfigError, require

OPTIMIZERS = ("sgd", "adam")
# With --noise-repeats 0, every batch contains about this many (item, noise) rows: small
# training sets then get several noise draws per item and step, which lowers the gradient
# noise and brings memorization forward (measured on the digits, see benchmarks/unet.md).
AUTO_ROWS = 256


@dataclass(frozen=True)
class TrainConfig:
    """Every option of ``genwindow unet train``; the defaults are the cpu-digits preset."""

    # Data
    data: str = "digits"
    n: int = 64                      # training-set size
    seed: int = 0                    # split, initialisation and training noise
    data_path: str | None = None
    size: int | None = None          # resize images to size × size; None keeps the source's
    heldout: int | None = None       # held-out items; None lets the source choose
    centre: str = "pixel"            # subtract the training mean image ("pixel"), scalar, none
    # Model
    model: str = "mlp"
    width: int = 256
    blocks: int = 4
    dropout: float = 0.0
    conditional: bool = False        # class-conditional with condition dropout
    cond_dropout: float = 0.1        # probability of training on the null condition ∅
    # Diffusion
    diffusion_steps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 2e-2
    # Optimisation
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.95           # SGD momentum
    weight_decay: float = 0.0
    batch: int = 0                   # 0: min(n, 512)
    noise_repeats: int = 0           # noise draws per item in one batch; 0: auto (below)
    grad_clip: float = 1.0           # max gradient norm; 0 disables clipping
    ema: float = 0.0                 # EMA decay per step; 0 disables EMA
    schedule: str = "constant"
    steps: int = 8000
    # Records
    snapshots_per_decade: float = 4.0
    checkpoint_every: int = 1000     # steps between resume states
    log_every: int = 100             # steps between status lines
    explode_factor: float = 20.0     # stop when the windowed loss exceeds this × its minimum
    # Monitors: cadences are "log:P" (P per decade), "every:N" or "off"
    loss_every: str = "log:8"
    denoiser_every: str = "log:4"
    fmem_every: str = "log:8"
    quality_every: str = "log:4"
    monitor_first: int = 100         # first nonzero step of log-spaced monitor cadences
    probe_times: tuple[float, ...] = (0.01, 0.05, 0.2, 1.0)
    probes: int = 512                # noised items per probe set
    samples: int = 200               # generated samples for f_mem and quality
    sampler: str = "ddim"
    sampler_steps: int = 50
    guidance: float = 1.0            # classifier-free guidance weight of conditional sampling
    inception: str | None = None     # TorchScript Inception file for the usual FID
    # Device
    device: str = "auto"
    bf16: bool = True                # bf16 autocast on CUDA
    compile: bool = False

    # Torch-dependent modules are imported on use, so that building the command line
    # (which reads the presets for its help text) does not import torch.
    def model_config(self):
        from genwindow.unet.models import ModelConfig

        return ModelConfig(kind=self.model, width=self.width, blocks=self.blocks,
                           dropout=self.dropout)

    def diffusion_config(self):
        from genwindow.unet.diffusion import DiffusionConfig

        return DiffusionConfig(self.diffusion_steps, self.beta_start, self.beta_end)

    def batch_size(self) -> int:
        return self.batch or min(self.n, 512)

    def repeats(self) -> int:
        """Noise draws per item: ``noise_repeats``, or with 0 enough for AUTO_ROWS rows."""
        return self.noise_repeats or max(1, AUTO_ROWS // self.batch_size())

    def as_dict(self) -> dict:
        values = asdict(self)
        values["probe_times"] = list(self.probe_times)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"configuration has unknown keys {unknown}; it was written by "
                              f"another version of genwindow")
        values = dict(values)
        if "probe_times" in values:
            values["probe_times"] = tuple(values["probe_times"])
        return cls(**values)

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid option."""
        from genwindow.unet.diffusion import SAMPLERS
        from genwindow.unet.models import MODEL_KINDS

        require(self.n >= 2, f"--n must be at least 2 (f_mem needs two training items), "
                             f"got {self.n}")
        require(self.model in MODEL_KINDS,
                f"--model must be one of {', '.join(MODEL_KINDS)}, got {self.model!r}")
        require(self.optimizer in OPTIMIZERS,
                f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        require(self.sampler in SAMPLERS,
                f"--sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        require(self.lr > 0, f"--lr must be positive, got {self.lr}")
        require(0 <= self.momentum < 1, f"--momentum must be in [0, 1), got {self.momentum}")
        require(0 <= self.ema < 1, f"--ema must be in [0, 1) (0 disables it), got {self.ema}")
        require(0 <= self.cond_dropout < 1,
                f"--cond-dropout must be in [0, 1), got {self.cond_dropout}")
        require(self.steps >= 1, f"--steps must be at least 1, got {self.steps}")
        require(self.batch >= 0, f"--batch must be ≥ 0 (0 means min(n, 512)), got {self.batch}")
        require(self.noise_repeats >= 0,
                f"--noise-repeats must be ≥ 0 (0 = auto), got {self.noise_repeats}")
        require(self.samples >= 2, f"--samples must be at least 2, got {self.samples}")
        require(self.checkpoint_every >= 1 and self.log_every >= 1,
                "--checkpoint-every and --log-every must be at least 1")
        require(self.explode_factor > 1,
                f"--explode-factor must be above 1, got {self.explode_factor}")
        require(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
                f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        from genwindow.unet.monitors import parse_cadence

        for option in ("loss_every", "denoiser_every", "fmem_every", "quality_every"):
            parse_cadence(getattr(self, option), self.steps, "--" + option.replace("_", "-"))


# The protocol that shows the generalization window on a CPU, found by experiment on the
# 8×8 digits (benchmarks/unet.md lists the runs): a residual MLP of width 256 (4 blocks,
# 0.96 M parameters), Adam 1e-3 with gradient clipping at 1, and about 256 (item, noise) rows
# per step. On one shared CPU thread, tau_mem grew from about 500 steps (n = 16) to about
# 2,600 (n = 128) while the encoder FD settled near step 1,000 for every n.
CPU_DIGITS = TrainConfig()

# Bonnaire, Urfin, Biroli, Mézard (2025), arXiv:2505.17638: CelebA, grayscale 32×32, U-Net
# of base width 32, SGD with momentum 0.95 and lr 0.01, batch min(n, 512), up to 2e6 steps.
PAPER_CELEBA32 = TrainConfig(
    data="celeba", n=1024, size=32, model="unet", width=32, dropout=0.1, optimizer="sgd",
    lr=1e-2, momentum=0.95, grad_clip=0.0, ema=0.0, steps=2_000_000, snapshots_per_decade=8.0,
    checkpoint_every=10_000, log_every=1000, fmem_every="log:6", quality_every="log:6",
    denoiser_every="log:4", monitor_first=1000, samples=1000, sampler_steps=100,
    noise_repeats=1)

PRESETS = {"cpu-digits": CPU_DIGITS, "paper-celeba32": PAPER_CELEBA32}


def apply_overrides(base: TrainConfig, overrides: dict) -> TrainConfig:
    """Return ``base`` with the given fields replaced (values of None are left alone)."""
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})
