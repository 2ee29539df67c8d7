"""The fine-tuning recipe as a typed config, apart from the training code so that reading it (the workflow,
the command line) does not import torch.

Its defaults are the config schema's `finetune` section (and the study `seed`): one source, so
`selfteach finetune` without flags trains like the workflow with an empty config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from selfteach import config as study_config

# Our schedule names -> transformers' names; every schedule starts with `warmup_steps` of linear warm-up.
SCHEDULES = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}
MIXED_PRECISION = ("auto", "no", "fp16", "bf16")
METHODS = ("full", "lora")
TRACKERS = ("csv", "tensorboard")  # finetune.log_with; the CSV is always written
# Keys of the schema's finetune section that the workflow reads (who trains, from what, on which devices);
# every other key is a field of FinetuneConfig.
WORKFLOW_KEYS = ("students", "init", "gpus", "accelerate")

_SCHEMA = study_config.defaults()
_DEFAULT = _SCHEMA["finetune"]


@dataclass
class FinetuneConfig:
    """The training recipe; the schema's defaults are the paper's (lr 5e-6, 10 warm-up steps, batch 4, 1024 tokens)."""

    epochs: int = _DEFAULT["epochs"]
    lr: float = _DEFAULT["lr"]
    warmup_steps: int = _DEFAULT["warmup_steps"]
    schedule: str = _DEFAULT["schedule"]  # "linear" | "cosine" | "constant", each after the warm-up
    block_size: int = _DEFAULT["block_size"]  # tokens per packed training sequence
    batch_size: int = _DEFAULT["batch_size"]  # blocks per device per micro-step
    grad_accum: int = _DEFAULT["grad_accum"]  # micro-steps per optimizer step
    max_grad_norm: float = _DEFAULT["max_grad_norm"]
    weight_decay: float = _DEFAULT["weight_decay"]  # applied to matrices only, never to norms or biases
    gradient_checkpointing: bool = _DEFAULT["gradient_checkpointing"]  # compute for memory on large models
    # "auto": bf16 on a CUDA GPU that has it, else fp16; fp32 ("no") on CPU
    mixed_precision: str = _DEFAULT["mixed_precision"]
    seed: int = _SCHEMA["seed"]
    log_every: int = _DEFAULT["log_every"]  # optimizer steps per CSV row
    log_with: str = _DEFAULT["log_with"]  # "csv" | "tensorboard" (also TensorBoard events, beside the CSV)
    method: str = _DEFAULT["method"]  # "full" | "lora" (peft adapters on the frozen base, merged per epoch)
    lora_rank: int = _DEFAULT["lora_rank"]
    lora_alpha: int = _DEFAULT["lora_alpha"]
    lora_dropout: float = _DEFAULT["lora_dropout"]
    lora_target_modules: str = _DEFAULT["lora_target_modules"]  # "all-linear" or "q_proj,v_proj,..."
    save_every_steps: int = _DEFAULT["save_every_steps"]  # steps per resumable checkpoint (and one per epoch)

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value, kind = getattr(self, field.name), type(field.default)
            if kind is float and type(value) is int:
                setattr(self, field.name, float(value))
            elif type(value) is not kind:  # e.g. YAML reads "5e-6" as a string
                raise ValueError(f"finetune {field.name}: expected {kind.__name__}, got {value!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"finetune schedule {self.schedule!r}: expected one of {sorted(SCHEDULES)}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"finetune mixed_precision {self.mixed_precision!r}: expected one of {MIXED_PRECISION}")
        for name, allowed in (("method", METHODS), ("log_with", TRACKERS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"finetune {name} {getattr(self, name)!r}: expected one of {allowed}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"finetune lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if not self.lora_target_modules.strip(" ,"):
            raise ValueError("finetune lora_target_modules must name at least one module, or be all-linear")
        for name in (
            "epochs",
            "block_size",
            "batch_size",
            "grad_accum",
            "log_every",
            "save_every_steps",
            "lora_rank",
            "lora_alpha",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"finetune {name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "warmup_steps", "max_grad_norm", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"finetune {name} must not be negative, got {getattr(self, name)}")

    def lora_targets(self) -> str | list[str]:
        """peft's `target_modules`: "all-linear" as is, else the list of names."""
        if self.lora_target_modules == "all-linear":
            return "all-linear"
        return [name.strip() for name in self.lora_target_modules.split(",") if name.strip()]

    @classmethod
    def from_dict(cls, values: dict) -> FinetuneConfig:
        """Build from a mapping (a config section, a JSON object); an unknown key is an error naming it."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"finetune config: unknown key(s) {unknown}; known keys: {sorted(known)}")
        return cls(**values)


def study_settings(study: dict) -> dict:
    """The FinetuneConfig fields of a validated study config: its finetune section less the workflow's
    keys, and the study seed."""
    recipe = {key: value for key, value in study["finetune"].items() if key not in WORKFLOW_KEYS}
    return {**recipe, "seed": study["seed"]}
