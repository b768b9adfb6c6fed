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
    monkeypatch.setattr(dev, "_chosen", None)


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
