"""The ``hf`` backend's agents: transformers models that answer and learn by fine-tuning.

Many agents share one *backbone* per base model: the network is held once in memory, and each
agent's own state is swapped in when it acts.

- Full fine-tuning: an agent's weights live in a safetensors file in its state folder; the
  backbone keeps a float32 training copy and a bfloat16 answering copy (where the CPU supports
  it) and loads an agent's weights into whichever is needed (a cast-copy, ~0.03 s in memory).
- LoRA: every agent is one ``peft`` adapter on a shared frozen float32 base (trained through
  ``peft``); only the adapter is stored (a few MB). For answering, the backbone keeps a
  bfloat16 copy of the base into which the answering agent's adapter is merged
  (W + scale·B·A for each adapted layer, ~0.03 s), so agents answer at the plain model's speed
  instead of through ``peft`` and autocast.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import shutil
import tempfile
import threading
import warnings
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, load_model, save_file, save_model

from ..bundled import BUNDLED_MODEL, cache_dir
from ..config import saved_state_problem
from ..errors import CorruptStateError, InputError
from ..store import atomic_dir, atomic_path, link_or_copy, replaceable_dir
from .contract import AgentSpec
from .device import current_device, current_precision
from .formats import add_format_tokens, check_format, encode_pair, render_prompt, stop_token_ids
from .hf import _resolve_dtype, generate_texts, load_pretrained, resolve_model_path
from .sources import is_model_folder
from .spec import Sampling, check_prompts
from .training import train_on_examples
from .update import TrainStats, UpdateConfig, check_pairs

AGENT_FILE = "agent.json"
WEIGHTS_FILE = "model.safetensors"
ADAPTER_FILE = "adapter.safetensors"
_ids = itertools.count()
_lock = threading.Lock()


class Backbone:
    """One base network shared by many agents (see the module docstring)."""

    def __init__(
        self,
        model: str,
        prompt_format: str,
        method: str,
        dtype: str = "auto",
        device: torch.device | None = None,
    ) -> None:
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging

        self.model_id = model
        self.method = method
        self.device = device or current_device()
        path = resolve_model_path(model)
        # Loading bars from transformers would interleave with the run's own progress display.
        hf_logging.disable_progress_bar()
        self.tokenizer, self.train_model = load_pretrained(
            path, model, lambda p: AutoModelForCausalLM.from_pretrained(p, dtype=torch.float32)
        )
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # New format-token rows are drawn at random: seed them so every backbone agrees.
        with torch.random.fork_rng():
            torch.manual_seed(0)
            add_format_tokens(self.tokenizer, self.train_model, prompt_format)
        self.train_model.eval()
        self.train_model.to(self.device)
        self.infer_dtype = _resolve_dtype(dtype, self.device)
        self._scratch = Path(
            tempfile.mkdtemp(prefix=f"backbone-{os.getpid()}-", dir=_scratch_root())
        )
        weakref.finalize(self, shutil.rmtree, str(self._scratch), True)
        if self.infer_dtype == torch.float32:
            self.infer_model = self.train_model
        else:
            # Copied before any adapter wraps the training network, so it is the plain base.
            self.infer_model = copy.deepcopy(self.train_model).to(self.infer_dtype)
            self.infer_model.requires_grad_(False)
        if method == "lora":
            self.train_model.requires_grad_(False)
            self.peft_model = None  # wrapped by the first agent's adapter
        else:
            self.base_file = self._scratch / "base.safetensors"
            save_model(self.train_model, str(self.base_file))
        self.train_owner: tuple | None = ("base", 0)
        self.infer_owner: tuple | None = ("base", 0)

    # -- full fine-tuning: swap an agent's weights in
    def load_weights(self, which: str, owner: tuple, weights: Path | None) -> torch.nn.Module:
        """The ``"train"`` or ``"infer"`` network holding ``owner``'s weights (loaded if needed)."""
        model = self.train_model if which == "train" else self.infer_model
        current = self.train_owner if which == "train" else self.infer_owner
        if current != owner:
            load_model(model, str(weights or self.base_file), device=str(self.device))
            if which == "train" or model is self.train_model:
                self.train_owner = owner
            if which == "infer" or model is self.infer_model:
                self.infer_owner = owner
        return model

    # -- LoRA: merge an agent's adapter into the answering copy
    def merged_infer_model(self, adapter: str, owner: tuple) -> torch.nn.Module | None:
        """The bfloat16 answering copy with ``adapter`` merged in, or None when merging does
        not apply (float32 answering, or an adapter on layers other than linear ones)."""
        from peft.tuners.lora import Linear as LoraLinear

        if self.infer_model is self.train_model or self.peft_model is None:
            return None
        if self.infer_owner == owner:
            return self.infer_model
        adapted = [
            (name, mod)
            for name, mod in self.peft_model.named_modules()
            if hasattr(mod, "lora_A") and adapter in mod.lora_A
        ]
        if not all(isinstance(mod, LoraLinear) for _, mod in adapted):
            return None
        targets = dict(self.infer_model.named_modules())
        prefix = "base_model.model."
        with torch.no_grad():
            for name, mod in adapted:
                target = targets[name.removeprefix(prefix)]
                # The float32 base plus the float32 delta, rounded once to bfloat16.
                target.weight.copy_(mod.base_layer.weight + mod.get_delta_weight(adapter))
        self.infer_owner = owner
        return self.infer_model

    def sync_infer_from_train(self, owner: tuple) -> None:
        """After an update, copy the trained weights into the answering copy (cast)."""
        if self.infer_model is not self.train_model:
            self.infer_model.load_state_dict(self.train_model.state_dict())
        self.infer_owner = self.train_owner = owner


_backbones: dict[tuple, Backbone] = {}


def _scratch_root() -> Path:
    root = cache_dir() / "scratch"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_scratch() -> int:
    """Remove scratch folders of backbones whose process has died (a killed run cannot remove
    its own). Returns how many were removed."""
    removed = 0
    for folder in _scratch_root().glob("backbone-*-*"):
        pid = folder.name.split("-")[1]
        if pid.isdecimal() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def get_backbone(
    model: str,
    prompt_format: str,
    method: str,
    dtype: str = "auto",
    device: torch.device | None = None,
) -> Backbone:
    """The shared backbone for this base model, format, update method and device (default:
    the current one), created once."""
    device = device or current_device()
    key = (model, prompt_format, method, dtype, current_precision(), str(device))
    with _lock:
        if key not in _backbones:
            if not _backbones:
                remove_stale_scratch()
            _backbones[key] = Backbone(model, prompt_format, method, dtype, device)
        return _backbones[key]


def clear_backbones() -> None:
    """Forget every shared backbone (frees memory; agents reload them on next use)."""
    with _lock:
        for bb in _backbones.values():
            shutil.rmtree(bb._scratch, ignore_errors=True)
        _backbones.clear()


class HFAgent:
    """A transformers language model that answers questions and learns from question–answer
    pairs by full fine-tuning or a LoRA adapter (the update rules ``full`` and ``lora``).

    Parameters
    ----------
    name : the agent's name (for tables and folders).
    model : ``"bundled"`` (SmolLM2-135M-Instruct), a local folder or a hub id.
    system_prompt : chat system message used when answering and learning.
    prompt_format : ``"chat"``, ``"appendix-a"`` (the paper's format for base models) or
        ``"plain"``.
    update : an ``UpdateConfig`` (or dict): full fine-tuning or LoRA, epochs, lr, batch size.
    sampling : a ``Sampling`` (greedy by default).
    batch_size : questions per forward pass when answering.
    state_dir : where the agent keeps its weights between uses (default: a scratch folder).
    seed : initialises the LoRA adapter.

    The agent computes on the device current when it is made (``models.device``).
    """

    def __init__(
        self,
        name: str = "agent",
        model: str = BUNDLED_MODEL,
        *,
        system_prompt: str | None = None,
        prompt_format: str = "chat",
        update: UpdateConfig | dict | None = None,
        sampling: Sampling | None = None,
        batch_size: int = 64,
        dtype: str = "auto",
        state_dir: str | Path | None = None,
        seed: int = 0,
    ) -> None:
        self.name = name
        self.model = model
        self.system_prompt = system_prompt
        self.prompt_format = check_format(prompt_format)
        self.update = update if isinstance(update, UpdateConfig) else UpdateConfig(**(update or {}))
        self.sampling = sampling or Sampling(do_sample=False)
        self.batch_size = batch_size
        self.dtype = dtype
        self.seed = seed
        self.device = current_device()  # fixed for the agent's life (see ``models.device``)
        self.n_updates = 0
        self._uid = f"a{next(_ids)}"
        if state_dir is None:
            # A scratch folder of the agent's own, removed when the agent is garbage-collected.
            state_dir = tempfile.mkdtemp(prefix=f"agent-{name}-", dir=_scratch_root())
            weakref.finalize(self, shutil.rmtree, state_dir, True)
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._weights: Path | None = None  # full: own weights once it has learned
        self._adapter_ready = False
        self._warned_truncation = False

    @classmethod
    def from_spec(cls, spec: AgentSpec, *, state_dir: str | Path | None = None) -> HFAgent:
        """A new agent from an ``AgentSpec`` (what ``models.registry.make_agent`` calls)."""
        return cls(
            spec.name,
            spec.model,
            system_prompt=spec.system_prompt,
            prompt_format=spec.prompt_format,
            update=spec.update,
            sampling=spec.sampling,
            batch_size=spec.batch_size,
            dtype=spec.dtype,
            state_dir=state_dir,
            seed=spec.seed,
        )

    @property
    def version(self) -> str:
        """Changes with every update and every reload (a new object)."""
        return f"{self._uid}:{self.n_updates}"

    # ------------------------------------------------------------------ internals
    @property
    def backbone(self) -> Backbone:
        return get_backbone(
            self.model, self.prompt_format, self.update.method, self.dtype, self.device
        )

    @property
    def _owner(self) -> tuple:
        return (self._uid, self.n_updates) if self._weights is not None else ("base", 0)

    def _lora_model(self):
        bb = self.backbone
        if not self._adapter_ready:
            from peft import LoraConfig, get_peft_model

            torch.manual_seed(self.seed)
            cfg = LoraConfig(
                r=self.update.lora_r,
                lora_alpha=self.update.lora_alpha,
                lora_dropout=self.update.lora_dropout,
                target_modules=list(self.update.lora_targets),
                task_type="CAUSAL_LM",
            )
            if bb.peft_model is None:
                bb.peft_model = get_peft_model(bb.train_model, cfg, adapter_name=self._uid)
            else:
                bb.peft_model.add_adapter(self._uid, cfg)
            self._adapter_ready = True
        pm = bb.peft_model
        pm.set_adapter(self._uid)
        for pname, param in pm.named_parameters():
            param.requires_grad_(f".{self._uid}." in pname)
        return pm

    def _answering_model(self) -> tuple[torch.nn.Module, bool]:
        """The network to answer with, and whether it must run under bfloat16 autocast."""
        bb = self.backbone
        if self.update.method == "lora":
            pm = self._lora_model()
            merged = bb.merged_infer_model(self._uid, (self._uid, self.n_updates))
            if merged is not None:
                return merged, False
            return pm, bb.infer_dtype == torch.bfloat16
        return bb.load_weights("infer", self._owner, self._weights), False

    # ------------------------------------------------------------------- actions
    def answer(
        self,
        questions: Sequence[str],
        sampling: Sampling | None = None,
        *,
        seed: int = 0,
        replicates: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[str] | list[list[str]]:
        """Answer ``questions``; returns one text per question (a list of ``replicates``
        texts per question when ``replicates > 1``). ``sampling``: the agent's own when None;
        sampling, if on, is seeded by ``seed``. Raises InputError for an empty question."""
        check_prompts(questions, "questions")
        bb = self.backbone
        lm, autocast = self._answering_model()
        rendered = [
            render_prompt(bb.tokenizer, q, self.system_prompt, self.prompt_format)
            for q in questions
        ]
        with torch.autocast(bb.device.type, dtype=torch.bfloat16, enabled=autocast):
            out = generate_texts(
                lm,
                bb.tokenizer,
                rendered,
                sampling=sampling or self.sampling,
                stop_ids=stop_token_ids(bb.tokenizer, self.prompt_format),
                replicates=replicates,
                batch_size=self.batch_size,
                seed=seed,
                on_batch=on_batch,
            )
        return [reps[0] for reps in out] if replicates == 1 else out

    def learn(
        self,
        pairs: Sequence[tuple[str, str]],
        *,
        seed: int = 0,
        t: int | None = None,
        source: str | None = None,
    ) -> TrainStats:
        """Update the agent on ``(question, answer)`` pairs (the update function); ``t`` and
        ``source`` (when and from whom) do not change a fine-tune.

        Raises InputError for an empty set or non-text pairs. Over-long examples are truncated
        to ``update.max_length`` tokens, counted in the returned stats and warned about once.
        The agent's new state is written atomically before this returns.
        """
        pairs = check_pairs(pairs)
        bb = self.backbone
        encoded = [
            encode_pair(
                bb.tokenizer, q, a, self.system_prompt, self.prompt_format, self.update.max_length
            )
            for q, a in pairs
        ]
        n_trunc = sum(t for _, _, t in encoded)
        if n_trunc and not self._warned_truncation:
            warnings.warn(
                f"agent {self.name!r}: {n_trunc} of {len(pairs)} examples are longer than "
                f"max_length={self.update.max_length} tokens and were truncated",
                stacklevel=2,
            )
            self._warned_truncation = True
        examples = [(ids, n_prompt) for ids, n_prompt, _ in encoded]
        if self.update.method == "lora":
            model = self._lora_model()
        else:
            model = bb.load_weights("train", self._owner, self._weights)
            model.requires_grad_(True)
        stats = train_on_examples(
            model, examples, self.update, pad_token_id=bb.tokenizer.pad_token_id, seed=seed
        )
        stats.n_truncated = n_trunc
        self.n_updates += 1
        if self.update.method == "full":
            model.requires_grad_(False)
            target = self.state_dir / WEIGHTS_FILE
            with atomic_path(target) as tmp:
                save_model(model, str(tmp))
            self._weights = target
            bb.sync_infer_from_train(self._owner)
        return stats

    # --------------------------------------------------------------- persistence
    def config_dict(self) -> dict:
        return {
            "name": self.name,
            "backend": "hf",
            "model": self.model,
            "system_prompt": self.system_prompt,
            "prompt_format": self.prompt_format,
            "update": self.update.model_dump(),
            "sampling": self.sampling.model_dump(),
            "batch_size": self.batch_size,
            "dtype": self.dtype,
            "seed": self.seed,
            "n_updates": self.n_updates,
        }

    def save(self, directory: str | Path) -> Path:
        """Write the agent (config + its own weights or adapter) to ``directory`` atomically."""
        with atomic_dir(directory) as tmp:
            if self.update.method == "lora" and self._adapter_ready:
                from peft import get_peft_model_state_dict

                state = get_peft_model_state_dict(self.backbone.peft_model, adapter_name=self._uid)
                save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / ADAPTER_FILE))
            elif self._weights is not None:
                link_or_copy(self._weights, tmp / WEIGHTS_FILE)
            (tmp / AGENT_FILE).write_text(json.dumps(self.config_dict(), indent=2))
        return Path(directory)

    def export(self, directory: str | Path) -> Path:
        """Write the agent's current network as a transformers model folder (weights and
        tokenizer, with any format tokens), usable as ``model=`` of new agents. Full
        fine-tuning agents only; raises InputError for LoRA agents, or for a ``directory`` that
        holds other files than a model (see ``store.replaceable_dir``)."""
        if self.update.method != "full":
            raise InputError(
                "export needs a full fine-tuning agent",
                field="update.method",
                value=self.update.method,
            )
        replaceable_dir(directory, is_kind=is_model_folder, what="a model folder")
        bb = self.backbone
        model = bb.load_weights("train", self._owner, self._weights)
        with atomic_dir(directory) as tmp:
            model.save_pretrained(tmp)
            bb.tokenizer.save_pretrained(tmp)
        return Path(directory)

    @classmethod
    def load(
        cls, directory: str | Path, *, state_dir: str | Path | None = None, own: bool = False
    ) -> HFAgent:
        """Read an agent written by ``save``. Its weights are read in place from ``directory``
        until its next update; with ``own``, they are first linked (or copied) into its
        ``state_dir``, so the agent outlives ``directory`` (a checkpoint that a run deletes
        once the next step is complete). Raises CorruptStateError for a missing or corrupt
        folder."""
        d = Path(directory)
        try:
            cfg = json.loads((d / AGENT_FILE).read_text())
            agent = cls(
                cfg["name"],
                cfg["model"],
                system_prompt=cfg["system_prompt"],
                prompt_format=cfg["prompt_format"],
                update=cfg["update"],
                sampling=Sampling(**cfg["sampling"]),
                batch_size=cfg["batch_size"],
                dtype=cfg["dtype"],
                seed=cfg["seed"],
                state_dir=state_dir,
            )
            n_updates = int(cfg["n_updates"])
        except FileNotFoundError:
            raise CorruptStateError("not an agent folder (no agent.json)", source=str(d)) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptStateError(
                f"corrupt agent.json: {saved_state_problem(exc)}", source=str(d / AGENT_FILE)
            ) from None
        agent.n_updates = n_updates
        try:
            if agent.update.method == "lora" and (d / ADAPTER_FILE).exists():
                from peft import set_peft_model_state_dict

                pm = agent._lora_model()
                set_peft_model_state_dict(
                    pm, load_file(str(d / ADAPTER_FILE)), adapter_name=agent._uid
                )
            elif agent.update.method == "full" and (d / WEIGHTS_FILE).exists():
                # Read in place until the next update (which writes to state_dir); reading the
                # header and tensor names validates the file before it is used.
                with safe_open(str(d / WEIGHTS_FILE), framework="pt") as fh:
                    if not list(fh.keys()):
                        raise CorruptStateError("the weights file holds no tensors", source=str(d))
                agent._weights = d / WEIGHTS_FILE
                if own:
                    agent._weights = link_or_copy(d / WEIGHTS_FILE, agent.state_dir / WEIGHTS_FILE)
            elif n_updates > 0:
                raise CorruptStateError(
                    f"the agent has {n_updates} update(s) but its weights file is missing",
                    source=str(d),
                )
        except CorruptStateError:
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged weights file, whatever the cause
            raise CorruptStateError(
                f"corrupt weights: {exc.__class__.__name__}: {exc}", source=str(d)
            ) from None
        return agent
