"""Benchmark one case-study step against the model's own compute on the same tokens.

One step of CS2 (preset ``cs2-adversary`` at its cpu scale, on the bundled model
SmolLM2-135M-Instruct) at 100 questions per interview (the paper's size; the cpu scale uses 8),
run by the engine, then the same work done bare, on the same weights and tokens:

- answering: the step's interviews (every source answers all its questions in one call) against
  a bare ``model.generate`` of the same rendered prompts, with the same sampling settings,
  ``max_new_tokens``, batches (sorted by length, the agents' batch size) and per-batch seeds,
  done directly with transformers (no project code), on the weights the sources answered with;
- learning: every interviewer's update against a bare forward + backward + AdamW loop over the
  same training examples (the same token ids, the same batches of 8, 1 epoch) directly in torch,
  from the same starting weights: the loss at the answer positions, as the model's minimal
  compute (the output head applied at those positions only);
- evaluating: the evaluation answers made at the step against a bare greedy ``generate`` of the
  same prompts (a model unchanged since its last evaluation, the static adversary, reuses its
  answers in the engine: it is left out of both).

The engine's own split comes from its ``timing`` event of the step (``read_parts(run,
"events")``); setup (building agents, the initial fine-tunes, cached across runs under
``$PERSPECTIVES_CACHE``) happens at step 0 and is reported apart, not counted. Step 1 is the one
measured: step 0 only evaluates. The agents' calls are recorded (prompts, seeds, examples,
weights files) by wrapping them; the recording itself costs nothing measurable. The bare answers
are compared with the engine's (same weights, batches and seeds: they should be identical), the
bare loss with the update's.

Dtype paths (``--dtype``, the project's precision setting): float32 is always measured;
bfloat16 only where the CPU runs it natively (elsewhere it is emulated, about 20x slower, which
says nothing about a native machine): a small matmul then documents the slowdown. Threads: the
machine's cores unless ``--threads``. Keep the machine otherwise idle. Writes
``benchmarks/results/step.json`` (with ``--quick``, 8 questions per interview, only prints
unless ``--out`` is given). Run with the project venv::

    python benchmarks/bench_step.py [--questions N] [--quick] [--dtype auto|float32|bfloat16]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "step.json"
PRESET = "cs2-adversary"
SCALE = "cpu"
MEASURED_STEP = 1
RATIO_TARGET = 2.0
PHASES = ("answering", "learning", "evaluating")
# The engine announces phases by these names (``Simulation.on_phase``).
SHOWN = {"interviews": "answering", "learning": "learning", "evaluation": "evaluating"}


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


# ------------------------------------------------------------------------------ recording
class Recorder:
    """Records what the agents compute at the measured step: every ``generate_texts`` and
    ``train_on_examples`` call with its inputs, its outputs, the weights file it ran on, and
    the wall time of the agent call around it."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.t: int | None = None
        self.phase: str | None = None
        self.agent: tuple[str, Path | None] | None = None
        self.generate: list[dict[str, Any]] = []
        self.train: list[dict[str, Any]] = []
        self.agent_calls: dict[str, float] = {p: 0.0 for p in PHASES}

    def on_phase(self, t: int, shown: str) -> None:
        self.t, self.phase = t, SHOWN.get(shown)

    @property
    def active(self) -> bool:
        return self.t == self.step and self.phase is not None

    @contextlib.contextmanager
    def install(self) -> Iterator[None]:
        from perspectives.models import hf_agent

        rec = self
        orig_gen, orig_train = hf_agent.generate_texts, hf_agent.train_on_examples
        orig_answer, orig_learn = hf_agent.HFAgent.answer, hf_agent.HFAgent.learn

        def around(orig):
            def call(agent, *args, **kwargs):
                rec.agent = (agent.name, agent._weights)  # the weights it computes with
                start = time.perf_counter()
                try:
                    return orig(agent, *args, **kwargs)
                finally:
                    if rec.active:
                        rec.agent_calls[rec.phase] += time.perf_counter() - start
                    rec.agent = None

            return call

        def generate_texts(lm, tokenizer, rendered, **kwargs):
            start = time.perf_counter()
            out = orig_gen(lm, tokenizer, rendered, **kwargs)
            if rec.active:
                name, weights = rec.agent
                rec.generate.append(
                    {
                        "phase": rec.phase,
                        "agent": name,
                        "weights": weights,
                        "rendered": list(rendered),
                        "sampling": kwargs["sampling"],
                        "stop_ids": list(kwargs["stop_ids"]),
                        "replicates": kwargs.get("replicates", 1),
                        "batch_size": kwargs.get("batch_size", 64),
                        "seed": kwargs.get("seed", 0),
                        "outputs": out,
                        "seconds": time.perf_counter() - start,
                    }
                )
            return out

        def train_on_examples(model, examples, cfg, *, pad_token_id, seed=0):
            start = time.perf_counter()
            stats = orig_train(model, examples, cfg, pad_token_id=pad_token_id, seed=seed)
            if rec.active:
                name, weights = rec.agent
                rec.train.append(
                    {
                        "agent": name,
                        "weights": weights,
                        "examples": [(list(ids), n) for ids, n in examples],
                        "cfg": cfg,
                        "pad_token_id": pad_token_id,
                        "seed": seed,
                        "stats": stats,
                        "seconds": time.perf_counter() - start,
                    }
                )
            return stats

        hf_agent.generate_texts, hf_agent.train_on_examples = generate_texts, train_on_examples
        hf_agent.HFAgent.answer = around(orig_answer)
        hf_agent.HFAgent.learn = around(orig_learn)
        try:
            yield
        finally:
            hf_agent.generate_texts, hf_agent.train_on_examples = orig_gen, orig_train
            hf_agent.HFAgent.answer, hf_agent.HFAgent.learn = orig_answer, orig_learn


# ----------------------------------------------------------------------- the engine's step
def step_config(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The CS2 cpu-scale config with T = 1 and the interview size (capped by the bank)."""
    from perspectives.data.banks import load_bank
    from perspectives.experiments.presets import load_preset

    preset = load_preset(PRESET)
    raw = preset.raw_config(SCALE)
    bank_size = len(load_bank(raw["question_bank"]))
    questions = min(args.questions, bank_size)
    sets: dict[str, Any] = {"steps": MEASURED_STEP, "interaction.questions": questions}
    if args.init_sample is not None:
        for i in range(len(raw["groups"])):
            sets[f"groups.{i}.init.sample_size"] = args.init_sample
    cfg = preset.config(SCALE, sets)
    return cfg, {
        "preset": PRESET,
        "scale": SCALE,
        "overrides": sets,
        "questions_asked_for": args.questions,
        "questions_per_interview": questions,
        "capped_by_bank": questions < args.questions,
        "bank": raw["question_bank"],
        "bank_size": bank_size,
        "config": cfg.model_dump(mode="json"),
    }


def run_step(cfg: Any, folder: Path, rec: Recorder) -> dict[str, Any]:
    """Run steps 0..1 in ``folder``; return the engine's timings and what happened at step 1."""
    from perspectives.models.initial import initial_cache_dir
    from perspectives.simulation.engine import Simulation
    from perspectives.simulation.rundir import read_parts

    cache = initial_cache_dir()
    before = set(os.listdir(cache)) if cache.is_dir() else set()
    start = time.perf_counter()
    with rec.install():
        Simulation.create(cfg, folder, on_phase=rec.on_phase).run()
    wall = time.perf_counter() - start
    after = set(os.listdir(cache)) if cache.is_dir() else set()

    events = read_parts(folder, "events")
    timing = {
        int(row["t"]): json.loads(row["detail"])
        for _, row in events[events["kind"] == "timing"].iterrows()
    }
    learned = events[(events["kind"] == "learn") & (events["t"] == MEASURED_STEP)]
    edges = read_parts(folder, "edges")
    edges = edges[edges["t"] == MEASURED_STEP]
    adversary = [m for m in cfg.models() if cfg.group_of(m).name == "adversary"]
    from_adversary = edges[edges["src"].isin(adversary)]
    among_others = edges[~edges["src"].isin(adversary) & ~edges["dst"].isin(adversary)]
    interviews = [
        {"asker": r["model"], "source": r["detail"], "seconds": float(r["seconds"])}
        for _, r in learned.iterrows()
    ]
    if not interviews:
        raise SystemExit(f"no interviews at step {MEASURED_STEP}: nothing to measure")
    made = sorted(n for n in after - before if not n.startswith("."))
    return {
        "wall_s": wall,
        "timing": timing,
        "interviews": interviews,
        "edges": {
            "total": len(edges),
            "from_adversary": len(from_adversary),
            "among_non_adversary": len(among_others),
            "vulnerable_step": bool(len(from_adversary)),
        },
        "initial_models_fine_tuned_now": len(made),
        "setup_s": timing[0].get("setup", 0.0),
    }


# ------------------------------------------------------------------------- the bare model
def load_bare_model(dtype: str):
    """The bundled model straight from its folder with transformers, and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from perspectives.bundled import bundled_model_path  # only to find the folder

    path = str(bundled_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.eval()
    gen_model = model
    if dtype == "bfloat16":
        gen_model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16)
        gen_model.eval()
    return model, gen_model, tok, path


class Weights:
    """Loads a weights file (None: the base model) into the bare networks, untimed."""

    def __init__(self, model, gen_model, path: str) -> None:
        self.model, self.gen_model, self.path = model, gen_model, path
        self.loaded: Path | str | None = None

    def load(self, weights: Path | None) -> None:
        import torch
        from safetensors.torch import load_model

        if self.loaded == weights:
            return
        with torch.no_grad():
            load_model(self.model, str(weights or Path(self.path) / "model.safetensors"))
            if self.gen_model is not self.model:
                self.gen_model.load_state_dict(self.model.state_dict())
        self.loaded = weights


def bare_generate(gen_model, tok, call: dict[str, Any]) -> dict[str, Any]:
    """One recorded answering call redone with transformers: same prompts, batches, seeds."""
    import torch

    sampling = call["sampling"]
    rendered, replicates, batch_size = call["rendered"], call["replicates"], call["batch_size"]
    eos = set(call["stop_ids"])
    ids = getattr(gen_model.generation_config, "eos_token_id", None)
    if ids is not None:
        eos |= set(ids if isinstance(ids, list) else [ids])
    eos_ids = sorted(eos)
    tok.padding_side = "left"
    jobs = [(i, r) for i in range(len(rendered)) for r in range(replicates)]
    lengths = [len(tok(rendered[i], add_special_tokens=False).input_ids) for i, _ in jobs]
    order = sorted(range(len(jobs)), key=lambda j: (lengths[j], jobs[j]))
    out: list[list[str]] = [[""] * replicates for _ in rendered]
    st = {
        "batches": 0,
        "rows": 0,
        "generate_s": 0.0,
        "prompt_tokens": 0,
        "prompt_padded_tokens": 0,
        "decode_steps": 0,
        "row_steps": 0,
        "answer_tokens": 0,
        "at_max_new_tokens": 0,
    }
    start = time.perf_counter()
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            chunk = [jobs[j] for j in order[b : b + batch_size]]
            batch = tok(
                [rendered[i] for i, _ in chunk],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            )
            kwargs: dict[str, Any] = {"do_sample": sampling.do_sample}
            if sampling.do_sample:
                key = f"{call['seed']}:{chunk[0]}-{len(chunk)}"
                torch.manual_seed(zlib.crc32(key.encode()) & 0x7FFFFFFF)
                kwargs.update(
                    temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k
                )
            else:
                kwargs.update(temperature=None, top_p=None, top_k=None)
            t0 = time.perf_counter()
            generated = gen_model.generate(
                **batch,
                max_new_tokens=sampling.max_new_tokens,
                pad_token_id=tok.pad_token_id,
                eos_token_id=eos_ids,
                **kwargs,
            )
            st["generate_s"] += time.perf_counter() - t0
            width = batch["input_ids"].shape[1]
            new = generated[:, width:]
            for (i, r), text in zip(
                chunk, tok.batch_decode(new, skip_special_tokens=True), strict=True
            ):
                out[i][r] = text.strip()
            # Tokens up to and including each row's first stop token: the useful ones.
            is_eos = torch.isin(new, torch.tensor(eos_ids))
            done = is_eos.any(dim=1)
            first = torch.where(done, is_eos.int().argmax(dim=1) + 1, new.shape[1])
            st["batches"] += 1
            st["rows"] += len(chunk)
            st["prompt_tokens"] += int(batch["attention_mask"].sum())
            st["prompt_padded_tokens"] += len(chunk) * width
            st["decode_steps"] += new.shape[1]
            st["row_steps"] += len(chunk) * new.shape[1]
            st["answer_tokens"] += int(first.sum())
            st["at_max_new_tokens"] += int((~done).sum())
    st["total_s"] = time.perf_counter() - start
    mine = [reps[0] for reps in out] if replicates == 1 else out
    theirs = call["outputs"]
    theirs = [reps[0] for reps in theirs] if replicates == 1 else theirs
    st["identical_answers"] = sum(a == b for a, b in zip(mine, theirs, strict=True))
    st["answers"] = len(mine)
    return st


def _batches(examples, batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """The update's data order (seeded shuffle, length-sorted windows of 4 batches, batches
    shuffled), restated so the bare loop sees the same batches."""
    order = rng.permutation(len(examples))
    window = batch_size * 4
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: len(examples[i][0]))
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def bare_train(model, call: dict[str, Any], bf16: bool) -> dict[str, Any]:
    """One recorded update redone in torch: forward (loss on the answer tokens), backward and
    a fused AdamW step per batch, on the same batches."""
    import torch
    import torch.nn.functional as F

    cfg, examples, pad = call["cfg"], call["examples"], call["pad_token_id"]
    rng = np.random.default_rng(call["seed"])
    torch.manual_seed(call["seed"])
    model.requires_grad_(True)
    model.train()
    st = {"forward_s": 0.0, "backward_s": 0.0, "optimizer_s": 0.0, "batches": 0}
    st.update(tokens=0, padded_tokens=0, answer_tokens=0)
    total = count = 0.0
    start = time.perf_counter()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True
    )
    for _ in range(cfg.epochs):
        for idx in _batches(examples, cfg.batch_size, rng):
            seqs = [examples[i] for i in idx]
            width = max(len(ids) for ids, _ in seqs)
            input_ids = torch.full((len(seqs), width), pad, dtype=torch.long)
            attention = torch.zeros((len(seqs), width), dtype=torch.long)
            answer = torch.zeros((len(seqs), width), dtype=torch.bool)
            for row, (ids, n_prompt) in enumerate(seqs):
                input_ids[row, : len(ids)] = torch.tensor(ids)
                attention[row, : len(ids)] = 1
                answer[row, n_prompt : len(ids)] = True
            mask = answer[:, 1:]
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                hidden = model.model(input_ids=input_ids, attention_mask=attention)
                h = hidden.last_hidden_state[:, :-1][mask]
                logits = model.lm_head(h).float()
                loss = F.cross_entropy(logits, input_ids[:, 1:][mask])
            t1 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            t2 = time.perf_counter()
            optimizer.step()
            t3 = time.perf_counter()
            st["forward_s"] += t1 - t0
            st["backward_s"] += t2 - t1
            st["optimizer_s"] += t3 - t2
            n = int(mask.sum())
            total += float(loss.detach()) * n
            count += n
            st["batches"] += 1
            st["tokens"] += int(attention.sum())
            st["padded_tokens"] += len(seqs) * width
            st["answer_tokens"] += n
    optimizer.zero_grad(set_to_none=True)
    st["total_s"] = time.perf_counter() - start
    st["compute_s"] = st["forward_s"] + st["backward_s"] + st["optimizer_s"]
    st["loss"] = total / max(count, 1)
    st["engine_loss"] = call["stats"].epoch_losses[0] if call["stats"].epoch_losses else None
    model.requires_grad_(False)
    model.eval()
    return st


def _sum(rows: list[dict[str, Any]], key: str) -> float:
    return float(sum(r[key] for r in rows))


def measure_bare(rec: Recorder, dtype: str) -> dict[str, Any]:
    """The recorded calls, redone bare; sums per phase."""
    import torch

    model, gen_model, tok, path = load_bare_model(dtype)
    weights = Weights(model, gen_model, path)
    # Warm-up (the engine's calls at step 1 are not its first either).
    with torch.inference_mode():
        warm = tok(["Hello", "What is two plus two?"], return_tensors="pt", padding=True)
        gen_model.generate(**warm, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)
    out: dict[str, Any] = {}
    for phase in ("answering", "evaluating"):
        calls = [c for c in rec.generate if c["phase"] == phase]
        rows = []
        for c in calls:
            say(f"  bare {phase}: {c['agent']}, {len(c['rendered'])} prompts ...")
            weights.load(c["weights"])
            row = bare_generate(gen_model, tok, c)
            row.update(agent=c["agent"], engine_generate_texts_s=c["seconds"])
            rows.append(row)
        keys = [k for k in (rows[0] if rows else {}) if k != "agent"]
        out[phase] = {"calls": rows, **{k: _sum(rows, k) for k in keys}}
    rows = []
    for c in rec.train:
        say(f"  bare learning: {c['agent']}, {len(c['examples'])} examples ...")
        weights.load(c["weights"])
        weights.loaded = "trained"  # the bare update changed the weights
        row = bare_train(model, c, dtype == "bfloat16")
        s = c["stats"]
        row.update(
            agent=c["agent"],
            engine_train_on_examples_s=c["seconds"],
            engine_forward_s=s.forward_s,
            engine_backward_s=s.backward_s,
            engine_optimizer_s=s.optimizer_s,
        )
        rows.append(row)
    keys = [k for k in (rows[0] if rows else {}) if k not in ("agent", "loss", "engine_loss")]
    out["learning"] = {"calls": rows, **{k: _sum(rows, k) for k in keys}}
    del model, gen_model, weights
    gc.collect()
    return out


# ----------------------------------------------------------------------- bfloat16 on a CPU
def matmul_bf16_ratio(seconds: float = 0.5) -> dict[str, Any]:
    """Time of a bfloat16 matmul over a float32 one, at the model's MLP shape."""
    import torch

    shape = (256, 576, 1536)  # tokens x hidden x intermediate (SmolLM2-135M)
    res: dict[str, Any] = {"shape_m_k_n": list(shape)}
    for dt in (torch.float32, torch.bfloat16):
        a = torch.randn(shape[0], shape[1]).to(dt)
        b = torch.randn(shape[1], shape[2]).to(dt)
        a @ b  # warm-up
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            a @ b
            n += 1
        res[str(dt).removeprefix("torch.") + "_ms"] = 1000 * (time.perf_counter() - start) / n
    res["ratio_bf16_over_fp32"] = res["bfloat16_ms"] / res["float32_ms"]
    return res


# -------------------------------------------------------------------------------- one path
def measure_path(args: argparse.Namespace, dtype: str, cfg: Any) -> dict[str, Any]:
    from perspectives.models.device import set_precision
    from perspectives.models.hf_agent import clear_backbones

    set_precision(dtype)
    rec = Recorder(MEASURED_STEP)
    folder = Path(tempfile.mkdtemp(prefix=f"bench-step-{dtype}-", dir=args.keep))
    load = {"start": _loadavg()}
    try:
        say(f"[{dtype}] engine: steps 0 and {MEASURED_STEP} (setup at step 0) ...")
        engine = run_step(cfg, folder, rec)
        load["after_engine"] = _loadavg()
        clear_backbones()
        gc.collect()
        say(f"[{dtype}] bare model, same tokens ...")
        bare = measure_bare(rec, dtype)
        load["after_bare"] = _loadavg()
    finally:
        clear_backbones()
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    step = engine["timing"][MEASURED_STEP]
    phases = {}
    for p in PHASES:
        b = bare[p]
        bare_s = b["compute_s"] if p == "learning" else b["generate_s"]
        kernel = b["engine_train_on_examples_s" if p == "learning" else "engine_generate_texts_s"]
        phases[p] = {
            "step_s": step[p],
            "agent_calls_s": rec.agent_calls[p],
            "kernel_s": kernel,  # generate_texts / train_on_examples inside the agents
            "bare_s": bare_s,
            "bare_total_s": b["total_s"],
            "ratio": step[p] / bare_s if bare_s else None,
            # The phase outside the kernel (weight swaps, encoding, saving), and the kernel's
            # own excess over the bare model on the same tokens.
            "outside_kernel_s": step[p] - kernel,
            "kernel_over_bare": kernel / bare_s if bare_s else None,
        }
    step_s = sum(step[p] for p in PHASES)
    bare_s = sum(phases[p]["bare_s"] for p in PHASES)
    return {
        "dtype_setting": dtype,
        "measured": True,
        "answer_dtype": step.get("answer_dtype"),
        "train_dtype": step.get("train_dtype"),
        "device": step.get("device"),
        "threads": step.get("threads"),
        "engine_wall_s": engine["wall_s"],
        "setup_s_not_counted": engine["setup_s"],
        "initial_models_fine_tuned_now": engine["initial_models_fine_tuned_now"],
        "step0_timing": engine["timing"][0],
        "step_timing": step,
        "edges": engine["edges"],
        "interviews": engine["interviews"],
        "phases": phases,
        "three_phases": {"step_s": step_s, "bare_s": bare_s, "ratio": step_s / bare_s},
        "step_total_s": step["total"],
        "step_total_ratio": step["total"] / bare_s,
        "bare": bare,
        "loadavg": load,
    }


# ---------------------------------------------------------------------------------- report
def machine_info() -> dict[str, Any]:
    import torch
    import transformers

    from perspectives.models.device import bf16_supported

    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_native": bf16_supported(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "total_memory_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
    }


def print_path(r: dict[str, Any], setup: dict[str, Any]) -> None:
    if not r["measured"]:
        print(f"\n[{r['dtype_setting']}] not measured: {r['reason']}")
        return
    e = r["edges"]
    print(
        f"\n[{r['dtype_setting']}] answer {r['answer_dtype']}, train {r['train_dtype']}, "
        f"{r['threads']} threads; step {MEASURED_STEP} of {PRESET} ({SCALE} scale), "
        f"{setup['questions_per_interview']} questions per interview, "
        f"{len(r['interviews'])} interviews; edges {e['total']} "
        f"({e['from_adversary']} from the adversary, {e['among_non_adversary']} among the others)"
    )
    print(
        f"{'phase':11} {'step s':>8} {'agent s':>8} {'kernel s':>9} {'bare s':>8} {'ratio':>6}"
        "   (agent: HFAgent calls; kernel: generate_texts/train_on_examples; bare: model only)"
    )
    for p in PHASES:
        x = r["phases"][p]
        print(
            f"{p:11} {x['step_s']:8.1f} {x['agent_calls_s']:8.1f} {x['kernel_s']:9.1f} "
            f"{x['bare_s']:8.1f} {x['ratio']:5.2f}x"
        )
    t = r["three_phases"]
    verdict = "ok" if t["ratio"] <= RATIO_TARGET else "MISSED"
    print(
        f"{'3 phases':11} {t['step_s']:8.1f} {'':8} {'':9} {t['bare_s']:8.1f} {t['ratio']:5.2f}x"
        f"  (target <= {RATIO_TARGET:.0f}x) {verdict}"
    )
    print(
        f"whole step {r['step_total_s']:.1f} s ({r['step_total_ratio']:.2f}x bare); setup at "
        f"step 0 {r['setup_s_not_counted']:.1f} s, not counted "
        f"({r['initial_models_fine_tuned_now']} initial models fine-tuned now)"
    )
    b = r["bare"]
    for p in ("answering", "evaluating"):
        g = b[p]
        print(
            f"  {p}: {int(g['answers'])} answers in {int(g['batches'])} batches; prompt tokens "
            f"{int(g['prompt_tokens'])} of {int(g['prompt_padded_tokens'])} padded "
            f"({g['prompt_tokens'] / max(g['prompt_padded_tokens'], 1):.0%} real); decode "
            f"row-steps {int(g['row_steps'])}, useful {int(g['answer_tokens'])} "
            f"({g['answer_tokens'] / max(g['row_steps'], 1):.0%}); answers at max_new_tokens "
            f"{int(g['at_max_new_tokens'])}; identical to the engine's "
            f"{int(g['identical_answers'])}/{int(g['answers'])}"
        )
    lr = b["learning"]
    print(
        f"  learning: {int(lr['batches'])} batches; tokens {int(lr['tokens'])} of "
        f"{int(lr['padded_tokens'])} padded ({lr['tokens'] / max(lr['padded_tokens'], 1):.0%} "
        f"real), {int(lr['answer_tokens'])} answer tokens; bare forward {lr['forward_s']:.1f} s, "
        f"backward {lr['backward_s']:.1f} s, AdamW {lr['optimizer_s']:.1f} s; engine's "
        f"{lr['engine_forward_s']:.1f} / {lr['engine_backward_s']:.1f} / "
        f"{lr['engine_optimizer_s']:.1f} s"
    )
    losses = [(c["engine_loss"], c["loss"]) for c in lr["calls"]]
    print("  losses engine/bare: " + ", ".join(f"{a:.4f}/{b_:.4f}" for a, b_ in losses))


def _exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so temporary folders are removed."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def main() -> None:
    _exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--questions", type=int, default=100, help="questions per interview (default 100)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 8 questions")
    parser.add_argument(
        "--dtype",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="auto (default): float32, and bfloat16 where native; float32 or bfloat16: that "
        "path only (bfloat16 even where it is emulated, slowly)",
    )
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count(), help="torch threads (default: cores)"
    )
    parser.add_argument(
        "--init-sample",
        type=int,
        default=None,
        help="pairs per initial fine-tune (default: the cpu scale's, 48)",
    )
    parser.add_argument("--keep", type=Path, help="keep the run folders under this folder")
    parser.add_argument("--out", type=Path, default=None, help=f"JSON (default {DEFAULT_OUT})")
    args = parser.parse_args()
    if args.quick:
        args.questions = 8
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)

    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT))
    from perspectives.models.device import bf16_supported

    started = time.perf_counter()
    load_start = _loadavg()
    if load_start and load_start[0] > 0.5:
        say(f"warning: load average {load_start} (is the machine idle?)")
    native = bf16_supported()
    cfg, setup = step_config(args)
    paths: list[dict[str, Any]] = []
    wanted = ["float32", "bfloat16"] if args.dtype == "auto" else [args.dtype]
    for dtype in wanted:
        if dtype == "bfloat16" and args.dtype == "auto" and not native:
            paths.append(
                {
                    "dtype_setting": "bfloat16",
                    "measured": False,
                    "bf16_native": False,
                    "reason": "no native bfloat16 on this CPU: bfloat16 is emulated here (see "
                    "matmul_bf16_over_fp32), which says nothing about a machine that has it; "
                    "the engine's own precision setting falls back to float32 (auto)",
                }
            )
            continue
        paths.append(measure_path(args, dtype, cfg))
    matmul = matmul_bf16_ratio()
    total = time.perf_counter() - started

    print(
        f"\none step of {PRESET} at {setup['questions_per_interview']} questions per interview, "
        f"bundled model (SmolLM2-135M-Instruct), {args.threads} threads"
    )
    for r in paths:
        print_path(r, setup)
    print(
        f"\nbf16 native: {native}; matmul {matmul['shape_m_k_n']}: float32 "
        f"{matmul['float32_ms']:.2f} ms, bfloat16 {matmul['bfloat16_ms']:.2f} ms "
        f"({matmul['ratio_bf16_over_fp32']:.1f}x)"
    )
    print(f"total {total:.0f} s")

    result = {
        "quick": args.quick,
        "target_ratio_max": RATIO_TARGET,
        "measured_step": MEASURED_STEP,
        "setup": setup,
        "bare_definitions": {
            "answering": "model.generate on the same rendered prompts, batches (length-sorted, "
            "the agents' batch size), sampling settings, max_new_tokens and per-batch seeds, "
            "same weights; time of the generate calls only",
            "learning": "forward (decoder, output head at the answer positions, cross-entropy) "
            "+ backward + fused AdamW per batch of 8, same batches and starting weights, 1 "
            "epoch; optimizer made fresh per update, as the engine does",
            "evaluating": "greedy model.generate of the evaluation prompts the engine answered "
            "at the step (the adversary's unchanged answers are reused by the engine, left "
            "out of both)",
        },
        "paths": paths,
        "matmul_bf16_over_fp32": matmul,
        "total_s": total,
        "machine": machine_info(),
        "loadavg": {"start": load_start, "end": _loadavg()},
    }
    out = args.out if args.out is not None else (None if args.quick else DEFAULT_OUT)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
