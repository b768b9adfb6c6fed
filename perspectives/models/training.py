"""The update function: fine-tuning a causal LM on question–answer pairs.

The loss is on answer tokens only, and the output head (for SmolLM2 a 49k x 576 matrix, a large
share of a step) is applied only at those positions. Matmuls run in bfloat16 under autocast
where the CPU supports it, with float32 master weights so small learning rates still move them.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from .device import use_bf16
from .update import TrainStats, UpdateConfig


def _use_bf16(mode: str, device: torch.device) -> bool:
    return mode == "bf16" or (mode == "auto" and use_bf16(device))


def _batches(
    examples: list[tuple[list[int], int]], batch_size: int, rng: np.random.Generator
) -> list[list[int]]:
    """Seeded shuffle, then batches of similar length (less padding), in shuffled order."""
    order = rng.permutation(len(examples))
    # Sort within windows of a few batches by length, then shuffle the batches themselves.
    window = batch_size * 4
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: len(examples[i][0]))
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def answer_token_loss(model, input_ids, attention_mask, answer_mask) -> torch.Tensor:
    """Mean cross-entropy of the answer tokens, with logits computed only at their positions.

    ``answer_mask[b, t]`` is True where token ``t`` belongs to the answer (it is predicted
    from position ``t - 1``).
    """
    decoder = model.get_decoder()
    hidden = decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    targets_mask = answer_mask[:, 1:]
    h = hidden[:, :-1][targets_mask]
    logits = model.get_output_embeddings()(h).float()
    return torch.nn.functional.cross_entropy(logits, input_ids[:, 1:][targets_mask])


def train_on_examples(
    model,
    examples: list[tuple[list[int], int]],
    cfg: UpdateConfig,
    *,
    pad_token_id: int,
    seed: int = 0,
) -> TrainStats:
    """Fine-tune ``model`` in place on encoded examples ``(token ids, prompt length)``.

    A fresh AdamW optimizer over the trainable parameters each call (each interaction is its
    own fine-tuning run, as in the paper); data order is drawn from ``seed``.
    """
    stats = TrainStats(n_examples=len(examples))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)  # dropout, if any
    device = next(model.parameters()).device
    use_bf16 = _use_bf16(cfg.mixed_precision, device)
    model.train()
    start_all = time.perf_counter()
    for _ in range(cfg.epochs):
        total, count = 0.0, 0
        for batch_idx in _batches(examples, cfg.batch_size, rng):
            seqs = [examples[i] for i in batch_idx]
            width = max(len(ids) for ids, _ in seqs)
            input_ids = torch.full((len(seqs), width), pad_token_id, dtype=torch.long)
            attention = torch.zeros((len(seqs), width), dtype=torch.long)
            answer = torch.zeros((len(seqs), width), dtype=torch.bool)
            for row, (ids, n_prompt) in enumerate(seqs):
                input_ids[row, : len(ids)] = torch.tensor(ids)
                attention[row, : len(ids)] = 1
                answer[row, n_prompt : len(ids)] = True
            n_tok = int(answer[:, 1:].sum())
            if n_tok == 0:
                continue
            input_ids, attention, answer = (x.to(device) for x in (input_ids, attention, answer))
            t0 = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss = answer_token_loss(model, input_ids, attention, answer)
            t1 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            t2 = time.perf_counter()
            optimizer.step()
            t3 = time.perf_counter()
            stats.forward_s += t1 - t0
            stats.backward_s += t2 - t1
            stats.optimizer_s += t3 - t2
            total += float(loss.detach()) * n_tok
            count += n_tok
        stats.epoch_losses.append(total / max(count, 1))
        stats.n_answer_tokens = count
    stats.total_s = time.perf_counter() - start_all
    model.eval()
    optimizer.zero_grad(set_to_none=True)
    return stats
