"""Benchmark the candidates for a faster float32 answering path on the bundled model.

Measures, in one process on this machine:

1. **Cost of a decode step by batch rows** (float32, and bfloat16 where the CPU runs it
   natively): what one more row costs against the step's fixed cost. If a step costs nearly
   as much with 1 row as with 24, decoding is bound by reading the weights, not by the rows.
2. **Dropping finished rows**: a decode loop that removes each row from the batch and the KV
   cache as soon as it stops, against ``model.generate`` (which keeps finished rows until the
   longest answer ends), on the same 24 greedy prompts; the answers must be equal.
3. **Dynamic int8 quantization** of the linear layers (``torch.ao.quantization``): decode
   speed and whether the first answer token agrees with float32 (the logits check).

Writes ``benchmarks/results/decode.json``.

    python benchmarks/bench_decode.py
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "decode.json"
ROWS = (1, 4, 8, 16, 24, 48)
MAX_NEW_TOKENS = 48


def prompts(tok, n: int, offset: int = 0) -> list[str]:
    from perspectives.data.banks import load_bank
    from perspectives.models.formats import render_prompt

    questions = load_bank("society_culture")["question"].tolist()
    picked = (questions * (1 + n // len(questions)))[offset : offset + n]
    rendered = [render_prompt(tok, q, None, "chat") for q in picked]
    return sorted(rendered, key=lambda s: len(tok(s, add_special_tokens=False).input_ids))


def batch_of(tok, texts):
    tok.padding_side = "left"
    return tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)


def step_cost(lm, tok, rows: int, steps: int = 10) -> dict:
    """Seconds of prefill per row and of one decode step at ``rows`` rows."""
    import torch
    from transformers import DynamicCache

    batch = batch_of(tok, prompts(tok, rows))
    with torch.inference_mode():
        cache = DynamicCache(config=lm.config)
        start = time.perf_counter()
        out = lm(**batch, cache=cache, use_cache=True, logits_to_keep=1)
        prefill = time.perf_counter() - start
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        mask = batch["attention_mask"]
        start = time.perf_counter()
        for _ in range(steps):
            mask = torch.cat([mask, torch.ones_like(nxt)], 1)
            out = lm(input_ids=nxt, attention_mask=mask, cache=cache, use_cache=True)
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        decode = (time.perf_counter() - start) / steps
    return {"rows": rows, "prefill_s_per_row": prefill / rows, "decode_step_s": decode}


def decode_dropping_finished(lm, input_ids, attention_mask, stop_ids, max_new_tokens):
    """Greedy decoding that drops each row from the batch and the cache once it stops."""
    import torch
    from transformers import DynamicCache

    n = input_ids.shape[0]
    stop = torch.tensor(sorted(set(stop_ids)))
    tokens: list[list[int]] = [[] for _ in range(n)]
    rows = torch.arange(n)
    mask = attention_mask
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=lm.config)
    with torch.inference_mode():
        out = lm(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        next_pos = positions[:, -1:] + 1
        for step in range(max_new_tokens):
            chosen = out.logits[:, -1].float().argmax(-1)
            done = torch.isin(chosen, stop)
            for r, tok, d in zip(rows.tolist(), chosen.tolist(), done.tolist(), strict=True):
                if not d:
                    tokens[r].append(tok)
            if step == max_new_tokens - 1 or bool(done.all()):
                break
            if bool(done.any()):
                keep = (~done).nonzero().squeeze(1)
                cache.batch_select_indices(keep)
                rows, chosen, mask, next_pos = rows[keep], chosen[keep], mask[keep], next_pos[keep]
            mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
            out = lm(
                input_ids=chosen[:, None],
                attention_mask=mask,
                position_ids=next_pos,
                cache=cache,
                use_cache=True,
            )
            next_pos = next_pos + 1
    return tokens


def drop_finished(lm, tok) -> dict:
    """``generate`` against the row-dropping loop on 24 greedy prompts (best of 2 each)."""
    from perspectives.models.formats import stop_token_ids

    batch = batch_of(tok, prompts(tok, 24, offset=40))
    stop = stop_token_ids(tok, "chat")
    width = batch["input_ids"].shape[1]

    def with_generate():
        out = lm.generate(
            **batch,
            max_new_tokens=MAX_NEW_TOKENS,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=tok.pad_token_id,
            eos_token_id=stop,
        )
        return tok.batch_decode(out[:, width:], skip_special_tokens=True)

    def with_dropping():
        out = decode_dropping_finished(
            lm, batch["input_ids"], batch["attention_mask"], stop, MAX_NEW_TOKENS
        )
        return tok.batch_decode(out, skip_special_tokens=True)

    times = {}
    answers = {}
    for name, fn in (("generate", with_generate), ("dropping", with_dropping)):
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            answers[name] = fn()
            best = min(best, time.perf_counter() - start)
        times[name] = best
    lengths = [len(tok(a, add_special_tokens=False).input_ids) + 1 for a in answers["generate"]]
    finished_share = 1 - sum(min(n, MAX_NEW_TOKENS) for n in lengths) / (
        len(lengths) * min(max(lengths), MAX_NEW_TOKENS)
    )
    return {
        "generate_s": times["generate"],
        "dropping_s": times["dropping"],
        "speedup": times["generate"] / times["dropping"],
        "answers_equal": sum(
            a == b for a, b in zip(answers["generate"], answers["dropping"], strict=True)
        ),
        "answers": len(answers["generate"]),
        "row_steps_on_finished_rows": finished_share,
    }


def int8_dynamic(lm, tok) -> dict:
    """Decode speed and first-token agreement of dynamic int8 linear layers vs float32."""
    import torch
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = quantize_dynamic(copy.deepcopy(lm), {torch.nn.Linear}, dtype=torch.qint8)
    batch = batch_of(tok, prompts(tok, 24))
    with torch.inference_mode():
        ref = lm(**batch, logits_to_keep=1).logits[:, -1]
        got = quantized(**batch, logits_to_keep=1).logits[:, -1]
    fp32 = step_cost(lm, tok, 24)
    int8 = step_cost(quantized, tok, 24)
    return {
        "decode_step_s_float32": fp32["decode_step_s"],
        "decode_step_s_int8": int8["decode_step_s"],
        "speedup": fp32["decode_step_s"] / int8["decode_step_s"],
        "first_token_agreement": float((ref.argmax(-1) == got.argmax(-1)).float().mean()),
        "mean_abs_logit_diff": float((ref - got).abs().mean()),
        "logit_std": float(ref.std()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    import torch

    from perspectives.models.device import bf16_supported
    from perspectives.models.hf import load_causal_lm

    warnings.filterwarnings("ignore", message=".*deprecated.*")
    result: dict = {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_native": bf16_supported(),
        "threads": torch.get_num_threads(),
        "max_new_tokens": MAX_NEW_TOKENS,
    }
    dtypes = ["float32"] + (["bfloat16"] if result["bf16_native"] else [])
    for dtype in dtypes:
        lm, tok = load_causal_lm("bundled", dtype)
        step_cost(lm, tok, 2, steps=2)  # warm up
        rows = [step_cost(lm, tok, n) for n in ROWS]
        for r in rows:
            print(
                f"[{dtype}] {r['rows']:3d} rows: decode step {r['decode_step_s'] * 1e3:6.1f} ms, "
                f"prefill {r['prefill_s_per_row'] * 1e3:6.1f} ms/row",
                flush=True,
            )
        drop = drop_finished(lm, tok)
        print(
            f"[{dtype}] generate {drop['generate_s']:.2f} s, dropping finished rows "
            f"{drop['dropping_s']:.2f} s ({drop['speedup']:.2f}x), answers equal "
            f"{drop['answers_equal']}/{drop['answers']}, row-steps on finished rows "
            f"{drop['row_steps_on_finished_rows']:.0%}",
            flush=True,
        )
        result[dtype] = {"decode_by_rows": rows, "drop_finished_rows": drop}
    lm, tok = load_causal_lm("bundled", "float32")
    q = int8_dynamic(lm, tok)
    print(
        f"[int8 dynamic] decode step {q['decode_step_s_int8'] * 1e3:.1f} ms vs float32 "
        f"{q['decode_step_s_float32'] * 1e3:.1f} ms ({q['speedup']:.2f}x); first token agrees "
        f"{q['first_token_agreement']:.0%}, mean |logit diff| {q['mean_abs_logit_diff']:.2f} "
        f"(logit std {q['logit_std']:.2f})",
        flush=True,
    )
    result["int8_dynamic"] = q
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
