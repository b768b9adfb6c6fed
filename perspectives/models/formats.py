"""Prompt formats: how a question (and its answer) become tokens.

- ``"chat"``: the tokenizer's chat template (instruction-tuned models; the default).
- ``"appendix-a"``: the paper's Appendix-A format for base models::

      ### Instruction: {question}
      ### Response: {answer}
      ### End

  with the three markers added to the tokenizer as special tokens.
- ``"plain"``: the question as is, answer appended (no template).
"""

from __future__ import annotations

from typing import Literal

from ..errors import InputError

PromptFormat = Literal["chat", "appendix-a", "plain"]
FORMATS = ("chat", "appendix-a", "plain")

INSTRUCTION_MARK = "### Instruction:"
RESPONSE_MARK = "### Response:"
END_MARK = "### End"


def check_format(fmt: str) -> str:
    """Return ``fmt`` if known; raise InputError otherwise."""
    if fmt not in FORMATS:
        raise InputError(f"must be one of {list(FORMATS)}", field="prompt_format", value=fmt)
    return fmt


def add_format_tokens(tokenizer, model=None, fmt: str = "appendix-a") -> bool:
    """Make the Appendix-A markers single special tokens (resizing ``model``'s embeddings).

    Returns True when tokens were added. A no-op for the other formats or when present.
    """
    if fmt != "appendix-a":
        return False
    marks = [INSTRUCTION_MARK, RESPONSE_MARK, END_MARK]
    vocab = tokenizer.get_vocab()
    missing = [m for m in marks if m not in vocab]
    if not missing:
        return False
    tokenizer.add_special_tokens({"additional_special_tokens": missing})
    if model is not None:
        model.resize_token_embeddings(len(tokenizer))
    return True


def render_prompt(tokenizer, question: str, system_prompt: str | None, fmt: str) -> str:
    """The text a model continues to answer ``question`` (the system prompt is used by the
    chat format only)."""
    if fmt != "chat" or tokenizer.chat_template is None:
        return render_conversation(tokenizer, [{"role": "user", "content": question}], fmt)
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return render_conversation(tokenizer, [*messages, {"role": "user", "content": question}], fmt)


def render_conversation(tokenizer, messages: list[dict[str, str]], fmt: str) -> str:
    """The text a model continues to answer the last turn of ``messages``.

    With the chat format, the tokenizer's chat template; otherwise (no template, or the plain
    and Appendix-A formats) the earlier turns' texts as a preamble before the last question;
    in the Appendix-A format an earlier question and its answer are one more example of the
    format (instruction, response, end), and a system message is the last instruction's
    preamble.
    """
    if fmt == "chat" and tokenizer.chat_template is not None:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    question = messages[-1]["content"]
    if fmt == "appendix-a":
        examples, context = "", []
        for m in messages[:-1]:
            if m["role"] == "user":
                examples += f"{INSTRUCTION_MARK} {m['content']}\n"
            elif m["role"] == "assistant":
                examples += f"{RESPONSE_MARK} {m['content']}\n{END_MARK}\n"
            elif m["content"]:
                context.append(m["content"])
        text = "\n\n".join([*context, question])
        return f"{examples}{INSTRUCTION_MARK} {text}\n{RESPONSE_MARK} "
    preamble = "\n\n".join(m["content"] for m in messages[:-1] if m["content"])
    return f"{preamble}\n\n{question}" if preamble else question


def answer_end(tokenizer, fmt: str) -> str:
    """What closes an answer in training text (so the model learns to stop)."""
    if fmt == "appendix-a":
        return f"\n{END_MARK}"
    return tokenizer.eos_token or ""


def stop_token_ids(tokenizer, fmt: str) -> list[int]:
    """Token ids that end generation in this format."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    if fmt == "appendix-a" and END_MARK in tokenizer.get_vocab():
        ids.add(tokenizer.convert_tokens_to_ids(END_MARK))
    return sorted(ids)


def encode_pair(
    tokenizer,
    question: str,
    answer: str,
    system_prompt: str | None,
    fmt: str,
    max_length: int,
) -> tuple[list[int], int, bool]:
    """Token ids of prompt + answer, the prompt's length, and whether it was truncated.

    Truncation keeps the whole prompt when it can and cuts the answer's tail; a prompt longer
    than ``max_length`` keeps its last tokens and one answer token.
    """
    prompt_ids = tokenizer(
        render_prompt(tokenizer, question, system_prompt, fmt), add_special_tokens=False
    ).input_ids
    answer_ids = tokenizer(answer + answer_end(tokenizer, fmt), add_special_tokens=False).input_ids
    truncated = len(prompt_ids) + len(answer_ids) > max_length
    if truncated:
        if len(prompt_ids) >= max_length:
            prompt_ids = prompt_ids[-(max_length - 1) :]
        answer_ids = answer_ids[: max_length - len(prompt_ids)]
    return prompt_ids + answer_ids, len(prompt_ids), truncated
