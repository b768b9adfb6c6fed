"""How an agent learns: the update config that names an update rule, and what an update did.

Torch-free, so configs can be read and checked without loading a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import Field, field_validator, model_validator

from ..config import Strict
from ..errors import InputError

# Far beyond any update (the paper's: 1 epoch; initial fine-tunes 3): larger is a typo.
MAX_EPOCHS = 1000
MAX_MEMORY_K = 100
LATER_FIELDS = ("memory_k", "memory_decay", "memory_format")


class UpdateConfig(Strict):
    """How an agent learns from pairs. Paper defaults for updates: 1 epoch, lr 1e-5, AdamW.

    ``method``: ``"full"`` fine-tunes every weight; ``"lora"`` trains a low-rank adapter
    (``lora_r``, ``lora_alpha``; needs a larger lr, about 1e-4 to 2e-4).
    ``max_length``: tokens per example (prompt + answer); longer ones are truncated.
    ``mixed_precision``: ``"auto"`` (bf16 autocast where supported), ``"bf16"`` or ``"no"``.

    ``"memory"`` fine-tunes nothing: the agent keeps what it hears in a retrieval database and
    answers with the ``memory_k`` items whose questions are most like the one asked (cosine
    similarity of embeddings, times ``exp(-memory_decay · age in steps)``) in its prompt.
    ``memory_format``: where the items go: ``"system"`` lists them as "Q: … A: …" in the
    system message; ``"turns"`` puts them before the question as earlier turns of the chat
    (a user question, the assistant's answer), the most relevant last; in the Appendix-A
    format each is one more instruction and response, in the plain format (which has no
    roles) the texts only, one after the other.

    Under a built-in method, a ``lora_*`` field away from its default with another method
    than ``"lora"``, or a ``memory_*`` one with another than ``"memory"``, is refused
    (ValueError): it would be ignored. Rules registered by users may read any field.
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
    memory_k: int = Field(5, ge=1, le=MAX_MEMORY_K)
    memory_decay: float = Field(0.0, ge=0, le=100, allow_inf_nan=False)
    memory_format: str = Field("system", pattern="^(system|turns)$")

    def stable_dump(self) -> dict:
        """``model_dump`` without the fields added after run folders existed, where they hold
        their defaults: the hashes of older configs (fingerprints, cache keys) stay the same."""
        data = self.model_dump()
        for name in LATER_FIELDS:
            if data[name] == type(self).model_fields[name].default:
                del data[name]
        return data

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        from .registry import update_rules

        update_rules.check(v)
        return v

    @model_validator(mode="after")
    def _fields_of_the_method(self) -> UpdateConfig:
        # A field of another built-in rule would be ignored without a word (memory_k with
        # the default method fine-tunes every weight). Rules registered by users may read
        # any field, so only the built-in ones are checked.
        if self.method not in _FIELDS_OF:
            return self
        for other, names in _FIELDS_OF.items():
            if other == self.method:
                continue
            for name in names:
                if getattr(self, name) != type(self).model_fields[name].get_default(
                    call_default_factory=True
                ):
                    raise ValueError(
                        f"{name} applies to method {other!r}, not {self.method!r} (set "
                        f"method: {other}, or leave {name} out)"
                    )
        return self


# The fields only one built-in update rule reads.
_FIELDS_OF = {
    "full": (),
    "lora": ("lora_r", "lora_alpha", "lora_dropout", "lora_targets"),
    "memory": ("memory_k", "memory_decay", "memory_format"),
}


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


def check_pairs(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pairs of an update as a list; raises InputError for an empty set, a pair that is
    not two texts, or an empty question."""
    pairs = list(pairs)
    if not pairs:
        raise InputError("an update needs at least one question–answer pair", field="pairs")
    for i, pair in enumerate(pairs):
        if (
            not isinstance(pair, tuple | list)
            or len(pair) != 2
            or not all(isinstance(x, str) for x in pair)
        ):
            raise InputError(
                "each pair must be two texts (question, answer)", field=f"pairs[{i}]", value=pair
            )
        if not pair[0].strip():
            raise InputError("empty question", field=f"pairs[{i}]", value=pair)
    return [(q, a) for q, a in pairs]
