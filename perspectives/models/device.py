"""Where agents compute: the CPU, or a GPU when one is present and asked for.

The device is a property of the machine, not of the simulated system: it is not part of a run's
config or fingerprint, so a run started on one machine can be resumed on another. It is set once
per process (``set_device``, the CLI's ``--device`` or ``$PERSPECTIVES_DEVICE``) and defaults to
``"auto"``: the first CUDA GPU if torch sees one, else the CPU. Numbers differ slightly between
devices (different kernels), so a run records the device it used.
"""

from __future__ import annotations

import os
import platform

import torch

from ..errors import InputError

DEVICE_ENV = "PERSPECTIVES_DEVICE"
PRECISION_ENV = "PERSPECTIVES_DTYPE"
PRECISIONS = ("auto", "float32", "bfloat16")
X86 = ("x86_64", "amd64", "i386", "i686", "x86")
X86_BF16_CHECKS = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # in torch.cpu
_chosen: torch.device | None = None
_precision: str | None = None


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"`` as a usable torch device.

    Raises InputError (field ``device``) for an unknown name or a device this machine lacks.
    """
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(
            "must be auto, cpu, cuda, cuda:N or mps", field="device", value=name
        ) from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError("no CUDA GPU is visible to torch here", field="device", value=name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(
                f"only {torch.cuda.device_count()} CUDA device(s) here", field="device", value=name
            )
        return device
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise InputError("no Apple GPU (MPS) is available here", field="device", value=name)
        return device
    raise InputError("must be auto, cpu, cuda, cuda:N or mps", field="device", value=name)


def set_device(name: str | None) -> torch.device:
    """Choose the device for agents created from now on in this process (an existing agent
    keeps the device it was made on); returns it."""
    global _chosen
    _chosen = resolve_device(name or "auto")
    return _chosen


def current_device() -> torch.device:
    """The device chosen by ``set_device``, else ``$PERSPECTIVES_DEVICE``, else ``"auto"``."""
    if _chosen is not None:
        return _chosen
    return resolve_device(os.environ.get(DEVICE_ENV, "auto"))


def set_precision(name: str | None) -> str:
    """Choose how agents created from now on compute: ``"auto"`` (bfloat16 where the device
    runs it natively, else float32), ``"float32"`` (everywhere: the machine-portable path,
    the same numbers on any CPU) or ``"bfloat16"`` (even where it is emulated, slowly).
    Returns the name. Raises InputError for another name."""
    global _precision
    _precision = check_precision(name or "auto")
    return _precision


def check_precision(name: str) -> str:
    """``name`` if it is a precision (see ``set_precision``); InputError otherwise."""
    name = name.strip().lower()
    if name not in PRECISIONS:
        raise InputError(f"must be one of {', '.join(PRECISIONS)}", field="dtype", value=name)
    return name


def current_precision() -> str:
    """The precision chosen by ``set_precision``, else ``$PERSPECTIVES_DTYPE``, else auto."""
    if _precision is not None:
        return _precision
    return check_precision(os.environ.get(PRECISION_ENV, "auto") or "auto")


def use_bf16(device: torch.device | None = None) -> bool:
    """Whether agents on ``device`` answer in bfloat16 and train under bfloat16 autocast: the
    chosen precision, with ``"auto"`` meaning where the device runs it natively."""
    precision = current_precision()
    if precision != "auto":
        return precision == "bfloat16"
    return bf16_supported(device)


def bf16_supported(device: torch.device | None = None) -> bool:
    """Whether ``device`` (default: the current one) runs bfloat16 matmuls natively:
    AVX512-BF16 or AMX on an x86 CPU, the BF16 instructions on an Arm CPU under Linux,
    Ampere or newer on CUDA."""
    device = device or current_device()
    if device.type == "cuda":
        # Compute capability 8 (Ampere) or newer; older GPUs only emulate bfloat16, slowly.
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "mps":
        return False
    return _cpu_bf16_native()


def _cpu_bf16_native() -> bool:
    try:
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
    except (AttributeError, RuntimeError):
        return False
    if platform.machine().lower() in X86:
        return _x86_bf16_native()
    # On Arm, oneDNN reports bfloat16 where the BF16 instructions exist. Trusted under Linux
    # (Arm servers); elsewhere (macOS runs float32 through Accelerate) it is unmeasured, so
    # float32, which is never the slow path.
    return platform.system() == "Linux"


def _x86_bf16_native() -> bool:
    """AVX512-BF16 or AMX. oneDNN also reports bfloat16 on any AVX512 core, where it converts
    to float32 around each matmul: on a Xeon without them it answered 3.5x and fine-tuned
    2.7x slower than float32 (``benchmarks/bench_dtype.py``), so auto took the slow path."""
    checks = [getattr(torch.cpu, n, None) for n in X86_BF16_CHECKS]
    if all(callable(c) for c in checks):  # torch's own CPU capability checks, where it has them
        try:
            return any(bool(c()) for c in checks)
        except RuntimeError:
            pass
    return bool(cpu_flags() & {"avx512_bf16", "amx_tile"})


def cpu_flags() -> set[str]:
    """The CPU's instruction-set flags as Linux lists them (``avx512_bf16``, ``amx_tile``,
    ...); empty elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            return {w for line in f if line.startswith("flags") for w in line.split()}
    except OSError:
        return set()
