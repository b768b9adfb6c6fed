"""Benchmark agents on the bundled model: answering, many agents, one update, peak memory.

All on SmolLM2-135M-Instruct (``"bundled"``), greedy decoding, ``max_new_tokens`` 48, questions
from the bundled prompt sets ``figure2_relevant`` and ``figure2_orthogonal`` (interleaved).

(1) Answers/s of ``HFAgent.answer`` (batched, bfloat16 where the CPU supports it) against the
    naive loop on the same model: a plain ``AutoModelForCausalLM`` in float32, the tokenizer's
    chat template and one ``generate`` per question. The naive loop is slow, so it answers
    fewer questions (drawn evenly from the same pool); rates are compared (target >= 15x at the
    agent's default batch size). Ours also at several batch sizes: the best is the single-model
    throughput used in (2). A float32 batched row separates batching from bfloat16.
(2) Many agents answering: 10 full fine-tuning agents (and separately 10 LoRA agents), each
    having learned once (distinct weights), each answering the same questions in turn, at two
    workloads: 50 questions per agent (one interview of the paper) and 128 (an evaluation
    set, enough to fill the best batch).
    Aggregate answers/s against the single-model best-batch throughput (target >= 80%), with
    the time split into switching agents (weight swap / adapter switch) and generating. The
    reference is the best batch size of (1), measured again just before and just after the
    agents' round (the machine's speed drifts by several percent over minutes); the ratio to
    the figure of (1) is reported too, and a base model answering the same questions at the
    same batch size separates the cost of small batches from the cost of many agents.
(3) One update (the paper's: 50 pairs, 1 epoch, batch 8): full fine-tuning at lr 1e-5 (target
    <= 15 s wall) and LoRA at lr 2e-4; wall time of ``HFAgent.learn`` and its split into forward,
    backward and optimizer step (``TrainStats``); "other" is swap-in, saving and syncing.
(4) Peak memory of one step of a population (each agent learns on a few pairs, then each
    answers a few questions), in a fresh subprocess per population: peak RSS
    (``ru_maxrss``) for 25 full fine-tuning agents (target < 12 GB) and 100 LoRA agents
    (target < 4 GB). Linux carries ``ru_maxrss`` over ``execve`` from the process that
    execs, so the worker is started through ``sh`` (which forks it): its ``ru_maxrss`` then
    starts from the shell's few MB, not from this process's peak; ``VmHWM`` is recorded too.

Agents' state folders live in a temporary folder removed at the end. Writes
``benchmarks/results/agents.json`` (with ``--quick``, a small smoke run, only prints unless
``--out`` is given). Keep the machine otherwise idle while it runs; the load average before
and after each part is recorded. Run with the project venv::

    python benchmarks/bench_agents.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "agents.json"
SPEED_TARGET = 15.0
MANY_TARGET = 0.80
UPDATE_TARGET_S = 15.0
FULL_MEMORY_TARGET_GB = 12.0
LORA_MEMORY_TARGET_GB = 4.0
MAX_NEW_TOKENS = 48
FULL_LR = 1e-5
LORA_LR = 2e-4

# One-sentence answers for the training pairs, in the order of the bundled prompt sets.
RELEVANT_ANSWERS = [
    "The forecast looks mostly sunny, so the weekend should be pleasant.",
    "In ten years the economy will probably be larger and more digital, with slow steady growth.",
    "If you have savings and a clear plan, next year is a fine time to start your business.",
    "With enough practice your chances of passing on the first try are good.",
    "Moving for a good job is often worth it if the role and the city suit you.",
    "AI will quietly take over many routine tasks and make everyday services more convenient.",
    "A two-hour delay is annoying but common, and you will most likely still get there today.",
    "Humans will probably visit Mars this century, though living there will take much longer.",
    "With patience and a routine, you and your puppy will get along wonderfully.",
    "House prices will most likely keep rising slowly, with some ups and downs along the way.",
    "Yes, adults learn the piano well and it brings a lot of joy.",
    "Your team has a fair chance of winning the final if they play at their best.",
    "You will have a hard few weeks, but most people find a new job within a few months.",
    "Investing savings in a broad index fund for the long term is usually sensible.",
    "Cities in fifty years will be greener, denser and full of quiet electric transport.",
    "Most houseplants survive two weeks if you water them well before you leave.",
    "It can be fine news, since a new owner usually has to honour your current lease.",
    "By 2100 climate change will bring hotter summers and higher seas, but we can adapt.",
    "If you have trained steadily, your marathon should go well.",
    "Expect questions about your experience, and a good chance of making a strong impression.",
    "Lending to a friend is wise only if you can afford never to get the money back.",
    "Electric cars will most likely replace petrol cars over the next few decades.",
    "More tests usually just mean your doctor wants to be thorough.",
    "A rainy summer will make your garden lush, though some vegetables may struggle.",
    "A reliable used car is usually the better value than a new one.",
    "Starting university at forty is a great idea, and mature students often do very well.",
    "A food delivery app can succeed if it serves a niche that the big apps ignore.",
    "Your child's first day will probably be exciting, with a few nerves that fade quickly.",
    "Rising sea levels are worth taking seriously, but coastal planning can limit the damage.",
    "If you bring evidence of your work, asking for a raise will most likely go well.",
    "Robots will change many jobs, but people will keep doing most work alongside them.",
    "A quick engagement can work out well when both people know what they want.",
    "A new recipe usually turns out fine if you follow it closely the first time.",
    "Buying a lottery ticket every week is fun but almost never pays off.",
    "Bees face real pressure, but conservation efforts should help them recover.",
    "A 40% chance of rain is fine for camping if you bring a good tent.",
    "A new restaurant on your street has a decent chance if the food is good.",
    "Your old laptop will likely last another year with a little care.",
    "Space travel has a bright future, with more missions and private flights each year.",
    "Expect a short hospital stay and a steady recovery over the following weeks.",
    "Constant barking usually means the dog is bored or anxious, which is not a good sign.",
    "Your kids will most likely have more opportunities than you did.",
    "Switching careers at thirty-five is common and often leads to more satisfying work.",
    "High housing costs will make it harder for young people to buy their first home.",
    "A strange noise often comes from worn brakes or a loose belt, so have it checked.",
    "More freedom can be worth a lower salary if you can still cover your costs.",
    "A new vaccine that has passed its trials is something people should welcome.",
    "Cooking for twenty guests will go well if you plan simple dishes and prepare ahead.",
    "Next year's harvest will probably be about average, depending on the weather.",
    "Social media will make some people happier and others sadder, depending on how they use it.",
    "Travelling alone to a new country is usually safe and very rewarding.",
    "There is a reasonable chance that an honest person returns your lost wallet.",
    "Adopting a second cat is often a good idea, as cats enjoy company.",
    "The new factory will bring jobs and more traffic to the town.",
    "Your online shop can get its first customers in a month with some promotion.",
    "Quitting coffee is a good plan, though the first week may bring headaches.",
    "Rising interest rates are good news for savers and bad news for borrowers.",
    "A strong friendship survives a move abroad with regular calls and visits.",
    "Planting tomatoes early is risky unless you protect them from frost.",
    "When today's babies grow up the world will be more connected and more automated.",
]
ORTHOGONAL_ANSWERS = [
    "The capital of Japan is Tokyo.",
    "The word 'house' backwards is 'esuoh'.",
    "A ripe banana is yellow.",
    "A spider has eight legs.",
    "The first month of the year is January.",
    "7 plus 5 is 12.",
    "The Eiffel Tower is in France.",
    "There are seven days in a week.",
    "The opposite of 'hot' is 'cold'.",
    "Mixing blue and yellow gives green.",
    "A triangle has three sides.",
    "The plural of 'mouse' is 'mice'.",
    "The largest planet in our solar system is Jupiter.",
    "10 times 3 is 30.",
    "The chemical symbol for water is H2O.",
    "The letter after 'K' is 'L'.",
    "There are 24 hours in a day.",
    "Water freezes at 0 degrees Celsius.",
    "'Hello' in Spanish is 'hola'.",
    "A cow says 'moo'.",
    "There are seven continents.",
    "The first letter of 'apple' is 'a'.",
    "The day after Monday is Tuesday.",
    "The currency of the United Kingdom is the pound sterling.",
    "There are 60 minutes in an hour.",
    "A shape with four equal sides and four right angles is a square.",
    "20 minus 8 is 12.",
    "The Pacific is the largest ocean.",
    "The sky on a clear day is blue.",
    "Twelve in digits is 12.",
    "A bicycle has two wheels.",
    "The past tense of 'run' is 'ran'.",
    "We live on Earth.",
    "A soccer team has eleven players on the field.",
    "The English alphabet has 26 letters.",
    "In alphabetical order: apple, mango, pear.",
    "Plants take in carbon dioxide from the air.",
    "There are twelve months in a year.",
    "Half of 50 is 25.",
    "A strawberry is a red fruit.",
    "The square root of 81 is 9.",
    "Bees make honey.",
    "Water boils at 100 degrees Celsius at sea level.",
    "The word 'banana' has three vowels.",
    "The giraffe is the tallest animal in the world.",
    "One human foot has five toes.",
    "'Hat' rhymes with 'cat'.",
    "Spring comes after winter.",
    "'Cat' in capital letters is 'CAT'.",
    "100 divided by 4 is 25.",
    "The main language spoken in Brazil is Portuguese.",
    "A standard guitar has six strings.",
    "The blue whale is the largest mammal on Earth.",
    "William Shakespeare wrote 'Romeo and Juliet'.",
    "One thousand has three zeros.",
    "A gold ring is made of gold.",
    "The last letter of the alphabet is 'z'.",
    "A kilogram of stone is heavier than a gram of stone.",
    "A baby cat is called a kitten.",
    "2 metres is 200 centimetres.",
]


# ------------------------------------------------------------------------------------ data
def question_pairs() -> list[tuple[str, str]]:
    """(question, answer) for every bundled figure-2 prompt, relevant and orthogonal
    interleaved (so any prefix mixes the two sets)."""
    from perspectives.data.prompts import load_prompts

    relevant = list(load_prompts("figure2_relevant")["prompt"])
    orthogonal = list(load_prompts("figure2_orthogonal")["prompt"])
    if len(relevant) != len(RELEVANT_ANSWERS) or len(orthogonal) != len(ORTHOGONAL_ANSWERS):
        raise RuntimeError("the bundled prompt sets changed: update the answers in this script")
    out = []
    for r, ra, o, oa in zip(
        relevant, RELEVANT_ANSWERS, orthogonal, ORTHOGONAL_ANSWERS, strict=True
    ):
        out += [(r, ra), (o, oa)]
    return out


def cycled(items: list, n: int, start: int = 0) -> list:
    """``n`` items of ``items`` from ``start``, wrapping around."""
    return [items[(start + i) % len(items)] for i in range(n)]


def evenly(items: list, n: int) -> list:
    """``n`` items spread evenly over ``items``."""
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


# ------------------------------------------------------------------------------- measuring
_T0 = time.perf_counter()


def say(message: str) -> None:
    """A progress line with the time since start."""
    print(f"[{time.perf_counter() - _T0:6.0f} s] {message}", flush=True)


def _status_bytes(key: str) -> int:
    """A size field of ``/proc/self/status`` (``VmRSS``: resident now; ``VmHWM``: the peak of
    this process's current address space), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def mean_tokens(tokenizer, texts: list[str]) -> float:
    """Mean length of answers in tokens (re-tokenized the same way for every row)."""
    if not texts:
        return 0.0
    return sum(len(tokenizer(t, add_special_tokens=False).input_ids) for t in texts) / len(texts)


def make_agent(name: str, method: str, state_dir: Path, *, n_batch: int = 64, seed: int = 0):
    from perspectives.models.hf_agent import HFAgent
    from perspectives.models.spec import Sampling

    lr = FULL_LR if method == "full" else LORA_LR
    return HFAgent(
        name,
        "bundled",
        update={"method": method, "lr": lr, "epochs": 1, "batch_size": 8},
        sampling=Sampling(do_sample=False, max_new_tokens=MAX_NEW_TOKENS),
        batch_size=n_batch,
        state_dir=state_dir,
        seed=seed,
    )


# ----------------------------------------------------------------------------- (1) answering
def naive_loop(questions: list[str]) -> tuple[float, list[str], Any]:
    """The baseline: fp32 ``AutoModelForCausalLM``, chat template, one ``generate`` each.

    Returns (seconds for ``questions``, answers, tokenizer); one untimed warm-up question.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from perspectives.models.hf import resolve_model_path

    path = resolve_model_path("bundled")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()

    def one(q: str) -> str:
        enc = tokenizer.apply_chat_template(
            [{"role": "user", "content": q}],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
        return tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)

    one(questions[-1])
    t0 = time.perf_counter()
    answers = [one(q).strip() for q in questions]
    return time.perf_counter() - t0, answers, tokenizer


def bench_answering(args: argparse.Namespace, pool: list[str]) -> dict[str, Any]:
    """Part (1): the naive loop, ours batched in float32, ours at several batch sizes."""
    from perspectives.models.hf import HFChatModel, load_causal_lm
    from perspectives.models.hf_agent import get_backbone

    rows: list[dict[str, Any]] = []
    naive_qs = evenly(pool, args.naive_questions)
    say(f"(1) naive loop, {len(naive_qs)} questions ...")
    seconds, answers, tokenizer = naive_loop(naive_qs)
    naive_rate = len(naive_qs) / seconds
    rows.append(
        {
            "name": "naive loop (fp32, one question at a time)",
            "dtype": "float32",
            "questions": len(naive_qs),
            "batch_size": 1,
            "seconds": seconds,
            "answers_per_s": naive_rate,
            "mean_answer_tokens": mean_tokens(tokenizer, answers),
        }
    )
    gc.collect()

    fp32_qs = cycled(pool, args.fp32_questions)
    say(f"(1) ours fp32 batched (HFChatModel), {len(fp32_qs)} questions ...")
    chat = HFChatModel("bundled", dtype="float32", batch_size=args.default_batch)
    chat.answer(pool[:8])
    t0 = time.perf_counter()
    answers = [a[0] for a in chat.answer(fp32_qs)]
    seconds = time.perf_counter() - t0
    rows.append(
        {
            "name": "ours, fp32 batched (HFChatModel)",
            "dtype": "float32",
            "questions": len(fp32_qs),
            "batch_size": args.default_batch,
            "seconds": seconds,
            "answers_per_s": len(fp32_qs) / seconds,
            "mean_answer_tokens": mean_tokens(tokenizer, answers),
        }
    )
    load_causal_lm.cache_clear()
    del chat
    gc.collect()

    agent = make_agent("single", "full", args.tmp / "single")
    dtype = str(get_backbone("bundled", "chat", "full").infer_dtype).removeprefix("torch.")
    agent.batch_size = min(args.batch_sizes)
    agent.answer(pool[: min(args.batch_sizes)])  # warm-up
    sweep_qs = cycled(pool, args.sweep_questions)
    for bs in args.batch_sizes:
        say(f"(1) ours HFAgent.answer, batch {bs}, {len(sweep_qs)} questions ...")
        agent.batch_size = bs
        t0 = time.perf_counter()
        answers = agent.answer(sweep_qs)
        seconds = time.perf_counter() - t0
        rows.append(
            {
                "name": f"ours, HFAgent.answer ({dtype})",
                "dtype": dtype,
                "questions": len(sweep_qs),
                "batch_size": bs,
                "seconds": seconds,
                "answers_per_s": len(sweep_qs) / seconds,
                "mean_answer_tokens": mean_tokens(tokenizer, answers),
            }
        )
    for r in rows:
        r["ratio_vs_naive"] = r["answers_per_s"] / naive_rate
    sweep = [r for r in rows if r["name"].startswith("ours, HFAgent")]
    best = max(sweep, key=lambda r: r["answers_per_s"])
    default = next((r for r in sweep if r["batch_size"] == args.default_batch), best)
    return {
        "rows": rows,
        "naive_answers_per_s": naive_rate,
        "default_batch_size": default["batch_size"],
        "default_answers_per_s": default["answers_per_s"],
        "speed_ratio": default["answers_per_s"] / naive_rate,
        "best_batch_size": best["batch_size"],
        "best_answers_per_s": best["answers_per_s"],
    }


# ---------------------------------------------------------------------- (2) many agents
def swap_diagnostics(agent, repeats: int = 3) -> dict[str, float]:
    """For a full agent: ``load_file`` of its weights vs the cast-copy into the answering model
    (the two steps of ``safetensors.torch.load_model`` in ``Backbone.load_weights``)."""
    from safetensors.torch import load_file

    bb = agent.backbone
    read, copy = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        state = load_file(str(agent._weights))
        t1 = time.perf_counter()
        bb.infer_model.load_state_dict(state, strict=False)
        t2 = time.perf_counter()
        read.append(t1 - t0)
        copy.append(t2 - t1)
        del state
    # The answering copy now holds this agent's weights: record it (as Backbone.load_weights).
    bb.infer_owner = agent._owner
    if bb.infer_model is bb.train_model:
        bb.train_owner = agent._owner
    return {"load_file_s": min(read), "cast_copy_s": min(copy)}


def timed_answers(agent, questions: list[str]) -> tuple[float, list[str]]:
    """Seconds for ``agent.answer(questions)`` (after any swap) and the answers."""
    agent._answering_model()  # swap in first: not part of the timing
    t0 = time.perf_counter()
    answers = agent.answer(questions)
    return time.perf_counter() - t0, answers


def bench_many(
    args: argparse.Namespace,
    method: str,
    pairs: list[tuple[str, str]],
    part1: dict[str, Any],
    n_questions: int,
) -> dict[str, Any]:
    """Part (2): ``args.n_agents`` agents that learned once, each answering the same
    ``n_questions`` questions.

    The single-model best-batch throughput is measured again just before and just after the
    agents' round (their mean is the reference: the machine's speed drifts over minutes), and
    one base model answers the same questions at the agents' batch size (no swaps).
    """
    folder = args.tmp / f"many-{method}-{n_questions}"
    questions = cycled([q for q, _ in pairs], n_questions)
    sweep_qs = cycled([q for q, _ in pairs], args.sweep_questions)
    base = make_agent("reference", "full", folder / "reference", n_batch=part1["best_batch_size"])
    tokenizer = base.backbone.tokenizer
    agents = [
        make_agent(f"{method}-{i}", method, folder / f"agent-{i}", seed=i)
        for i in range(args.n_agents)
    ]
    say(f"(2) {len(agents)} {method} agents learn once ...")
    t0 = time.perf_counter()
    for i, agent in enumerate(agents):
        agent.learn(cycled(pairs, args.many_learn_pairs, start=i * args.many_learn_pairs), seed=i)
    learn_s = time.perf_counter() - t0
    agents[-1].answer(questions[:8])  # warm-up of this answering path
    say(f"(2) reference: one base model, batch {base.batch_size} ...")
    ref_before = len(sweep_qs) / timed_answers(base, sweep_qs)[0]
    base.batch_size = agents[0].batch_size
    base_seconds, base_answers = timed_answers(base, questions)
    say(f"(2) {len(agents)} {method} agents answer {len(questions)} questions each ...")
    switch, generate, tokens = [], [], []
    for agent in agents:
        t0 = time.perf_counter()
        agent._answering_model()  # the weight swap (full) or adapter switch (LoRA)
        t1 = time.perf_counter()
        answers = agent.answer(questions)
        t2 = time.perf_counter()
        switch.append(t1 - t0)
        generate.append(t2 - t1)
        tokens.append(mean_tokens(tokenizer, answers))
    say("(2) reference again ...")
    base.batch_size = part1["best_batch_size"]
    ref_after = len(sweep_qs) / timed_answers(base, sweep_qs)[0]
    reference = (ref_before + ref_after) / 2
    n_answers = len(agents) * len(questions)
    total = sum(switch) + sum(generate)
    rate = n_answers / total
    out: dict[str, Any] = {
        "method": method,
        "agents": len(agents),
        "questions_per_agent": len(questions),
        "batch_size": agents[0].batch_size,
        "learn_pairs_per_agent": args.many_learn_pairs,
        "learn_all_s": learn_s,
        "answers": n_answers,
        "seconds": total,
        "switch_s": sum(switch),
        "generate_s": sum(generate),
        "switch_s_per_agent": sum(switch) / len(agents),
        "per_agent_switch_s": switch,
        "per_agent_generate_s": generate,
        "per_agent_mean_answer_tokens": tokens,
        "answers_per_s": rate,
        "generation_only_answers_per_s": n_answers / sum(generate),
        "reference_batch_size": part1["best_batch_size"],
        "reference_before_answers_per_s": ref_before,
        "reference_after_answers_per_s": ref_after,
        "reference_answers_per_s": reference,
        "fraction_of_single_best": rate / reference,
        "part1_best_answers_per_s": part1["best_answers_per_s"],
        "fraction_of_part1_best": rate / part1["best_answers_per_s"],
        "base_same_questions_answers_per_s": len(questions) / base_seconds,
        "base_same_questions_mean_answer_tokens": mean_tokens(tokenizer, base_answers),
    }
    if method == "full":
        out["swap_split"] = swap_diagnostics(agents[0])
    del agents, base
    gc.collect()
    shutil.rmtree(folder, ignore_errors=True)
    return out


# ------------------------------------------------------------------------------- (3) update
def bench_update(
    args: argparse.Namespace, method: str, pairs: list[tuple[str, str]]
) -> dict[str, Any]:
    """Part (3): one update of a fresh agent (``args.update_repeats`` agents, one each)."""
    runs = []
    for r in range(args.update_repeats):
        say(f"(3) {method} update {r + 1}/{args.update_repeats} ...")
        agent = make_agent(f"update-{method}-{r}", method, args.tmp / f"update-{method}-{r}")
        t0 = time.perf_counter()
        stats = agent.learn(pairs[: args.update_pairs], seed=r)
        wall = time.perf_counter() - t0
        runs.append(
            {
                "wall_s": wall,
                "train_s": stats.total_s,
                "forward_s": stats.forward_s,
                "backward_s": stats.backward_s,
                "optimizer_s": stats.optimizer_s,
                "other_s": wall - stats.total_s,
                "loss": stats.epoch_losses[0],
                "answer_tokens": stats.n_answer_tokens,
            }
        )
        shutil.rmtree(agent.state_dir, ignore_errors=True)
    best = min(runs, key=lambda r: r["wall_s"])
    return {
        "method": method,
        "lr": FULL_LR if method == "full" else LORA_LR,
        "pairs": args.update_pairs,
        "epochs": 1,
        "batch_size": 8,
        "runs": runs,
        "best": best,
    }


# ------------------------------------------------------------------------------- (4) memory
def memory_worker(args: argparse.Namespace) -> None:
    """Fresh process: a population of agents, one step (all learn, then all answer)."""
    maxrss_start = _maxrss_bytes()  # what this process started from (see the docstring)
    sys.path.insert(0, str(ROOT))
    from perspectives.models.hf_agent import clear_backbones

    pairs = question_pairs()
    questions = [q for q, _ in pairs]
    rss_imports = _status_bytes("VmRSS")
    folder = Path(args.state_root)
    try:
        agents = [
            make_agent(f"{args.method}-{i}", args.method, folder / f"agent-{i}", seed=i)
            for i in range(args.agents)
        ]
        t0 = time.perf_counter()
        for i, agent in enumerate(agents):
            agent.learn(cycled(pairs, args.pairs, start=i * args.pairs), seed=i)
        t1 = time.perf_counter()
        for i, agent in enumerate(agents):
            agent.answer(cycled(questions, args.questions, start=i * args.questions))
        t2 = time.perf_counter()
        disk = _folder_bytes(folder)
    finally:
        clear_backbones()
    print(
        json.dumps(
            {
                "method": args.method,
                "agents": args.agents,
                "pairs_per_agent": args.pairs,
                "questions_per_agent": args.questions,
                "maxrss_at_start_bytes": maxrss_start,
                "rss_after_imports_bytes": rss_imports,
                "rss_end_bytes": _status_bytes("VmRSS"),
                "peak_rss_bytes": _maxrss_bytes(),
                "vm_hwm_bytes": _status_bytes("VmHWM"),
                "learn_s": t1 - t0,
                "answer_s": t2 - t1,
                "state_on_disk_bytes": disk,
            }
        )
    )


def bench_memory(args: argparse.Namespace, method: str, n_agents: int) -> dict[str, Any]:
    """Part (4): run ``memory_worker`` in a fresh subprocess; its state folder is removed."""
    folder = args.tmp / f"memory-{method}"
    say(f"(4) {n_agents} {method} agents, one step, fresh process ...")
    # Through sh, which forks the worker, so that ru_maxrss does not start from our peak.
    cmd = ["/bin/sh", "-c", '"$@"; exit $?', "sh"]
    cmd += [sys.executable, __file__, "--memory-worker", "--method", method]
    cmd += ["--agents", str(n_agents), "--pairs", str(args.memory_pairs)]
    cmd += ["--questions", str(args.memory_questions), "--state-root", str(folder)]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        print(exc.stderr[-4000:], file=sys.stderr)
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    row = json.loads(done.stdout.strip().splitlines()[-1])
    row["process_wall_s"] = time.perf_counter() - t0
    return row


# ---------------------------------------------------------------------------------- report
def machine_info() -> dict[str, Any]:
    import peft
    import torch
    import transformers

    from perspectives.models.device import bf16_supported, cpu_flags

    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "torch_threads": torch.get_num_threads(),
        "bf16_supported": bf16_supported(),
        # What the bfloat16 answer rests on (earlier records: oneDNN's answer alone).
        "cpu_flags": sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_tile"}),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "total_memory_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
    }


def print_tables(res: dict[str, Any], quick: bool) -> None:
    def mark(ok: bool) -> str:
        return "" if quick else ("  ok" if ok else "  MISSED")

    a = res["answering"]
    print(
        f"\n(1) Answers/s, bundled model, greedy, max_new_tokens {MAX_NEW_TOKENS} "
        f"(target: HFAgent.answer at batch {a['default_batch_size']} >= {SPEED_TARGET:.0f}x naive)"
    )
    print(f"{'':44} {'questions':>9} {'batch':>5} {'answers/s':>10} {'tok/ans':>8} {'vs naive':>9}")
    for r in a["rows"]:
        target_row = r["name"].startswith("ours, HFAgent") and (
            r["batch_size"] == a["default_batch_size"]
        )
        print(
            f"{r['name']:44} {r['questions']:9d} {r['batch_size']:5d} {r['answers_per_s']:10.2f} "
            f"{r['mean_answer_tokens']:8.1f} {r['ratio_vs_naive']:8.1f}x"
            f"{mark(r['ratio_vs_naive'] >= SPEED_TARGET) if target_row else ''}"
        )
    print(
        f"single-model best: batch {a['best_batch_size']}, {a['best_answers_per_s']:.2f} answers/s"
    )

    many = res["many"]
    if many:
        m0 = many[0]
        print(
            f"\n(2) {m0['agents']} agents x the same questions (batch size "
            f"{m0['batch_size']}), one after another (target >= {MANY_TARGET:.0%} of the "
            f"single-model best, batch {m0['reference_batch_size']}, measured just before and "
            "after)"
        )
        print(
            f"{'method':6} {'qs':>4} {'answers/s':>10} {'ref/s':>6} {'of ref':>7} {'of (1)':>7} "
            f"{'switch s':>9} {'generate s':>11} {'gen-only/s':>11} {'tok/ans':>8} "
            f"{'base same/s':>12}"
        )
        for m in many:
            tok = sum(m["per_agent_mean_answer_tokens"]) / len(m["per_agent_mean_answer_tokens"])
            print(
                f"{m['method']:6} {m['questions_per_agent']:4d} {m['answers_per_s']:10.2f} "
                f"{m['reference_answers_per_s']:6.2f} "
                f"{m['fraction_of_single_best']:7.1%} {m['fraction_of_part1_best']:7.1%} "
                f"{m['switch_s']:9.2f} {m['generate_s']:11.2f} "
                f"{m['generation_only_answers_per_s']:11.2f} {tok:8.1f} "
                f"{m['base_same_questions_answers_per_s']:12.2f}"
                f"{mark(m['fraction_of_single_best'] >= MANY_TARGET)}"
            )
        print(
            "ref/s: single-model best batch, mean of before and after; of (1): against the best "
            "of (1);\nbase same/s: one base model answering the same questions at the same "
            "batch size, no swaps"
        )
        for m in many:
            if "swap_split" in m:
                s = m["swap_split"]
                print(
                    f"full swap per agent {m['switch_s_per_agent']:.3f} s (load_file "
                    f"{s['load_file_s']:.3f} s + cast-copy {s['cast_copy_s']:.3f} s)"
                )
            elif m["method"] == "lora":
                print(
                    f"LoRA switch per agent (merge into the bf16 answering copy, "
                    f"{m['questions_per_agent']} q): {m['switch_s_per_agent']:.3f} s"
                )

    if res["update"]:
        print(
            f"\n(3) One update: {res['update'][0]['pairs']} pairs, 1 epoch, batch 8 "
            f"(target full <= {UPDATE_TARGET_S:.0f} s wall); best of the runs"
        )
        print(
            f"{'method':6} {'lr':>7} {'wall s':>7} {'train s':>8} {'fwd s':>6} {'bwd s':>6} "
            f"{'opt s':>6} {'other s':>8} {'loss':>6}  all walls"
        )
        for u in res["update"]:
            b = u["best"]
            walls = ", ".join(f"{r['wall_s']:.1f}" for r in u["runs"])
            print(
                f"{u['method']:6} {u['lr']:7.0e} {b['wall_s']:7.2f} {b['train_s']:8.2f} "
                f"{b['forward_s']:6.2f} {b['backward_s']:6.2f} {b['optimizer_s']:6.2f} "
                f"{b['other_s']:8.2f} {b['loss']:6.3f}  {walls}"
                f"{mark(b['wall_s'] <= UPDATE_TARGET_S) if u['method'] == 'full' else ''}"
            )

    if res["memory"]:
        print(
            "\n(4) Peak RSS (ru_maxrss) of one step of a population (all learn, then all "
            "answer), fresh process each; GB = 1e9 bytes"
        )
        print(
            f"{'method':6} {'agents':>6} {'pairs':>5} {'qs':>3} {'peak GB':>8} {'target':>7} "
            f"{'VmHWM GB':>9} {'learn s':>8} {'answer s':>9} {'disk GB':>8}"
        )
        for m in res["memory"]:
            target = FULL_MEMORY_TARGET_GB if m["method"] == "full" else LORA_MEMORY_TARGET_GB
            peak = m["peak_rss_bytes"] / 1e9
            print(
                f"{m['method']:6} {m['agents']:6d} {m['pairs_per_agent']:5d} "
                f"{m['questions_per_agent']:3d} {peak:8.2f} {'< ' + str(target):>7} "
                f"{m['vm_hwm_bytes'] / 1e9:9.2f} {m['learn_s']:8.1f} {m['answer_s']:9.1f} "
                f"{m['state_on_disk_bytes'] / 1e9:8.2f}{mark(peak < target)}"
            )
    print(f"\nload average (1, 5, 15 min) by part: {res['loadavg']}")


def _exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so temporary folders and backbones are cleaned up."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def main() -> None:
    _exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--out", type=Path, default=None, help=f"JSON (default {DEFAULT_OUT})")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument(
        "--reuse-memory",
        action="store_true",
        help="skip (4) and keep the memory results already in the output file (peak RSS does "
        "not depend on the machine's load, the timings of (1)-(3) do)",
    )
    # Worker mode (internal).
    parser.add_argument("--memory-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--agents", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pairs", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--questions", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--state-root", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.memory_worker:
        memory_worker(args)
        return

    q = args.quick
    args.naive_questions = 3 if q else 16
    args.fp32_questions = 16 if q else 64
    args.batch_sizes = [8, 16] if q else [16, 32, 64, 128]
    args.default_batch = 16 if q else 64
    args.sweep_questions = 32 if q else 256
    args.n_agents = 2 if q else 10
    args.many_questions = [8] if q else [50, 128]
    args.many_learn_pairs = 4 if q else 8
    args.update_pairs = 8 if q else 50
    args.update_repeats = 1 if q else 2
    args.memory_agents = {"full": 2, "lora": 3} if q else {"full": 25, "lora": 100}
    args.memory_pairs = 4 if q else 20
    args.memory_questions = 2 if q else 10

    sys.path.insert(0, str(ROOT))
    from perspectives.models.hf_agent import clear_backbones

    pairs = question_pairs()
    pool = [question for question, _ in pairs]
    loadavg: dict[str, list[float]] = {"start": _loadavg()}
    if loadavg["start"] and loadavg["start"][0] > 0.5:
        say(f"warning: load average {loadavg['start']} (is the machine idle?)")
    started = time.perf_counter()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_agents_") as tmp:
        args.tmp = Path(tmp)
        try:
            results["answering"] = bench_answering(args, pool)
            loadavg["after_1"] = _loadavg()
            part1 = results["answering"]
            results["many"] = [
                bench_many(args, m, pairs, part1, n)
                for n in args.many_questions
                for m in ("full", "lora")
            ]
            loadavg["after_2"] = _loadavg()
            update_pairs = pairs[0::2] + pairs[1::2]  # the relevant questions first
            results["update"] = [bench_update(args, m, update_pairs) for m in ("full", "lora")]
            loadavg["after_3"] = _loadavg()
        finally:
            clear_backbones()
        gc.collect()
        out_file = args.out if args.out is not None else DEFAULT_OUT
        if args.reuse_memory and out_file.exists():
            earlier = json.loads(out_file.read_text())
            results["memory"] = earlier.get("memory", [])
            results["memory_from_earlier_run"] = True
        elif args.skip_memory or args.reuse_memory:
            results["memory"] = []
        else:
            results["memory"] = [bench_memory(args, m, n) for m, n in args.memory_agents.items()]
        loadavg["after_4"] = _loadavg()
    results["loadavg"] = loadavg
    results["total_s"] = time.perf_counter() - started
    print_tables(results, q)
    print(f"total {results['total_s']:.0f} s")

    out_data = {
        "quick": q,
        "targets": {
            "speed_ratio_min": SPEED_TARGET,
            "many_agents_fraction_of_single_best_min": MANY_TARGET,
            "full_update_wall_s_max": UPDATE_TARGET_S,
            "full_25_peak_rss_gb_max": FULL_MEMORY_TARGET_GB,
            "lora_100_peak_rss_gb_max": LORA_MEMORY_TARGET_GB,
        },
        "settings": {
            "model": "bundled (SmolLM2-135M-Instruct)",
            "max_new_tokens": MAX_NEW_TOKENS,
            "greedy": True,
            "full_lr": FULL_LR,
            "lora_lr": LORA_LR,
            "memory_pairs_per_agent": args.memory_pairs,
            "memory_questions_per_agent": args.memory_questions,
        },
        "machine": machine_info(),
        **results,
    }
    out = args.out if args.out is not None else (None if q else DEFAULT_OUT)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(out_data, indent=2) + "\n")
        print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
