"""Choosing where agents compute: names, a missing GPU, the environment, the command line."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from perspectives.cli.app import app
from perspectives.errors import InputError
from perspectives.models import device as dev
from perspectives.models.hf_agent import HFAgent, clear_backbones
from perspectives.models.spec import Sampling

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


@pytest.fixture(autouse=True)
def _reset_device(monkeypatch):
    monkeypatch.delenv(dev.DEVICE_ENV, raising=False)
    monkeypatch.delenv(dev.PRECISION_ENV, raising=False)
    monkeypatch.setattr(dev, "_chosen", None)
    monkeypatch.setattr(dev, "_precision", None)


def test_names_resolve_to_devices():
    assert dev.resolve_device("cpu") == torch.device("cpu")
    assert dev.resolve_device(" CPU ") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert dev.resolve_device("auto").type == expected
    with pytest.raises(InputError) as err:
        dev.resolve_device("tpu")
    assert err.value.field == "device" and "tpu" in str(err.value)


@no_cuda
def test_a_missing_gpu_is_a_clear_error():
    for name in ("cuda", "cuda:1"):
        with pytest.raises(InputError, match="no CUDA GPU") as err:
            dev.resolve_device(name)
        assert err.value.field == "device"


def test_set_device_and_environment(monkeypatch):
    monkeypatch.setenv(dev.DEVICE_ENV, "cpu")
    assert dev.current_device() == torch.device("cpu")
    monkeypatch.setenv(dev.DEVICE_ENV, "abacus")
    with pytest.raises(InputError):
        dev.current_device()
    assert dev.set_device("cpu") == torch.device("cpu")
    assert dev.current_device() == torch.device("cpu")  # the explicit choice wins


@no_cuda
def test_run_with_a_missing_gpu_exits_with_one_line():
    result = CliRunner().invoke(app, ["run", "quickstart", "--device", "cuda"])
    assert result.exit_code == 2
    assert "device" in result.output and "no CUDA GPU" in result.output


def test_agents_compute_on_the_chosen_device(tiny_model_dir, tmp_path):
    dev.set_device("cpu")
    clear_backbones()
    agent = HFAgent(
        "a",
        str(tiny_model_dir),
        state_dir=tmp_path / "a",
        sampling=Sampling(do_sample=False, max_new_tokens=4),
    )
    assert agent.backbone.device == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in agent.backbone.infer_model.parameters())
    before = agent.answer(["What is a friend?"])
    agent.learn([("What is a friend?", "Someone who listens.")] * 8)
    assert agent.n_updates == 1 and len(before) == 1
    clear_backbones()


def test_precision_chooses_the_dtype_path(monkeypatch):
    """auto follows the hardware; float32 and bfloat16 are what they say, on any machine."""
    from perspectives.models.hf import _resolve_dtype
    from perspectives.models.training import _use_bf16

    cpu = torch.device("cpu")
    assert dev.current_precision() == "auto"
    assert dev.use_bf16(cpu) == dev.bf16_supported(cpu)
    dev.set_precision("float32")
    assert not dev.use_bf16(cpu) and _resolve_dtype("auto", cpu) == torch.float32
    assert not _use_bf16("auto", cpu) and _use_bf16("bf16", cpu)  # an explicit config wins
    dev.set_precision("bfloat16")
    assert dev.use_bf16(cpu) and _resolve_dtype("auto", cpu) == torch.bfloat16
    assert _resolve_dtype("float32", cpu) == torch.float32  # an explicit dtype wins
    monkeypatch.setattr(dev, "_precision", None)
    monkeypatch.setenv(dev.PRECISION_ENV, "float32")
    assert dev.current_precision() == "float32"
    with pytest.raises(InputError) as err:
        dev.set_precision("int4")
    assert err.value.field == "dtype" and "int4" in str(err.value)


@pytest.mark.parametrize(
    ("machine", "system", "onednn", "avx512_bf16", "amx", "native"),
    [
        ("x86_64", "Linux", False, False, False, False),  # AVX2 only
        ("x86_64", "Linux", True, False, False, False),  # AVX512 without BF16: oneDNN converts
        ("x86_64", "Linux", True, True, False, True),  # AVX512-BF16 (Cooper Lake, Zen 4)
        ("x86_64", "Linux", True, False, True, True),  # AMX
        ("AMD64", "Windows", True, False, False, False),
        ("AMD64", "Windows", True, True, False, True),
        ("aarch64", "Linux", True, False, False, True),  # Arm: oneDNN's answer is the CPU's
        ("aarch64", "Linux", False, False, False, False),
        ("arm64", "Darwin", True, False, False, False),  # unmeasured there: float32
    ],
)
def test_auto_takes_bfloat16_only_where_the_cpu_runs_it_natively(
    monkeypatch, machine, system, onednn, avx512_bf16, amx, native
):
    monkeypatch.setattr(dev.platform, "machine", lambda: machine)
    monkeypatch.setattr(dev.platform, "system", lambda: system)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    cpu = torch.device("cpu")
    assert dev.bf16_supported(cpu) is native
    assert dev.use_bf16(cpu) is native


@pytest.mark.parametrize(("flags", "native"), [({"avx512f"}, False), ({"amx_tile"}, True)])
def test_a_torch_without_the_cpu_checks_reads_the_kernels_flags(monkeypatch, flags, native):
    monkeypatch.setattr(dev.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    monkeypatch.setattr(dev, "cpu_flags", lambda: flags)
    assert dev.bf16_supported(torch.device("cpu")) is native


def test_bfloat16_is_native_where_the_cpu_flags_say_so():
    """This machine's answer, against the kernel's list of its instructions."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(f.read().split())
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    if dev.platform.machine().lower() not in dev.X86 or torch.cuda.is_available():
        pytest.skip("the flags read here are x86's")
    native = "avx512_bf16" in flags or "amx_tile" in flags
    assert dev.bf16_supported(torch.device("cpu")) is native


def test_a_run_records_its_dtype_path(tiny_model_dir, tmp_path, isolated_cache):
    """The dtypes a step ran with are in its timing event, and analyze reports them."""
    import json

    import yaml

    from perspectives.reporting.run_analysis import analyze_run
    from perspectives.simulation.rundir import read_parts

    cfg = {
        "name": "dt",
        "steps": 1,
        "question_bank": "neutral",
        "groups": [{"name": "a", "count": 2, "model": str(tiny_model_dir)}],
        "interaction": {"questions": 2, "sampling": {"max_new_tokens": 4}},
        "update": {"batch_size": 2},
        "evaluation": {"n_prompts": 3, "sampling": {"do_sample": False, "max_new_tokens": 4}},
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["run", str(tmp_path / "cfg.yaml"), "--out", str(out), "--dtype", "float32"]
    )
    assert result.exit_code == 0, result.output
    events = read_parts(out, "events")
    timing = [json.loads(d) for d in events[events["kind"] == "timing"]["detail"]]
    assert [(x["answer_dtype"], x["train_dtype"]) for x in timing] == [("float32", "float32")] * 2
    paths = analyze_run(out).summary["compute"]
    assert paths == [
        {
            "device": "cpu",
            "threads": torch.get_num_threads(),
            "answer_dtype": "float32",
            "train_dtype": "float32",
            "steps": [0, 1],
        }
    ]
    clear_backbones()


def test_openmp_waits_passively_unless_the_user_says_otherwise():
    """Spinning OpenMP threads slow a run on a busy machine (benchmarks/bench_busy.py)."""
    import os
    import subprocess
    import sys

    code = "import os, perspectives; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "ACTIVE"
