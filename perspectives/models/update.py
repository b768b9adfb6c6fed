"""How an agent learns: the update config that names an update rule, and what an update did.

Torch-free, so configs can be read and checked without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import Field, field_validator

from ..config import Strict

# Far beyond any update (the paper's: 1 epoch; initial fine-tunes 3): larger is a typo.
MAX_EPOCHS = 1000


class UpdateConfig(Strict):
    """How an agent learns from pairs. Paper defaults for updates: 1 epoch, lr 1e-5, AdamW.

    ``method``: ``"full"`` fine-tunes every weight; ``"lora"`` trains a low-rank adapter
    (``lora_r``, ``lora_alpha``; needs a larger lr, about 1e-4 to 2e-4).
    ``max_length``: tokens per example (prompt + answer); longer ones are truncated.
    ``mixed_precision``: ``"auto"`` (bf16 autocast where supported), ``"bf16"`` or ``"no"``.
    """

    method: str = "full"
    epochs: int = Field(1, ge=1, le=MAX_EPOCHS)
    lr: float = Field(1e-5, gt=0)
    batch_size: int = Field(8, ge=1)
    weight_decay: float = Field(0.0, ge=0)
    max_length: int = Field(256, ge=2)
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    lora_targets: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    mixed_precision: str = Field("auto", pattern="^(auto|bf16|no)$")

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        from .registry import update_rules

        update_rules.check(v)
        return v


@dataclass
class TrainStats:
    """What one update did: mean loss per epoch (answer tokens), tokens, and time split (s)."""

    epoch_losses: list[float] = field(default_factory=list)
    n_examples: int = 0
    n_answer_tokens: int = 0
    n_truncated: int = 0
    forward_s: float = 0.0
    backward_s: float = 0.0
    optimizer_s: float = 0.0
    total_s: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)
