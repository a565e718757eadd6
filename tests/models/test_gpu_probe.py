"""Memory probes: the real NVML code path (failing here without a GPU) and its fallbacks."""

from __future__ import annotations

import sys
import types
from collections import namedtuple

import pytest

from labdeck.backend import gpu


def test_probe_reports_a_labelled_reading_and_a_clear_status() -> None:
    readings = gpu.probe_all()
    assert readings
    for r in readings:
        assert r.source in ("nvml", "torch", "host")
        assert 0 < r.used <= r.total
        assert 0.0 < r.fraction <= 1.0
        event = r.as_event()
        assert {"device", "name", "used", "total", "util", "source", "fraction"} <= set(event)
    status = gpu.nvml_status()
    if readings[0].source == "host":
        assert readings == [readings[0]] and readings[0].device == "cpu"
        assert status.startswith("no NVIDIA GPU (NVML: ")
        assert status.endswith("showing host memory")
        assert gpu._NVML.error and gpu._NVML.error in status
    else:
        assert "NVML" in status


def test_nvml_is_initialised_once_not_per_sample() -> None:
    gpu.probe_all()
    calls = gpu._NVML.init_calls
    for _ in range(50):
        gpu.probe_all()
        gpu.nvml_status()
    assert gpu._NVML.init_calls == calls <= 1


def test_probe_for_picks_the_reading_of_the_model_device() -> None:
    assert gpu.probe_for("cpu").source == "host"
    reading = gpu.probe_for("cuda:0")
    if gpu.probe_all()[0].source == "host":
        assert reading.device == "cpu"  # no GPU: the host is what bounds the model
    else:
        assert reading.device == "cuda:0"
    fraction = gpu.memory_fraction_probe("cpu")()
    assert fraction is not None and 0.0 < fraction < 1.0


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (None, {0: 0, 1: 1, 2: 2, 3: 3}),
        ("2,0", {2: 0, 0: 1}),
        ("1,7,2", {1: 0}),  # CUDA ignores everything after an invalid entry
        ("GPU-bbb", {1: 0}),
        ("", {}),
    ],
)
def test_cuda_visible_devices_maps_nvml_indices_to_cuda_ordinals(
    monkeypatch: pytest.MonkeyPatch, env: str | None, expected: dict[int, int]
) -> None:
    if env is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", env)
    uuids = ["GPU-aaa1", "GPU-bbb2", "GPU-ccc3", "GPU-ddd4"]
    assert gpu._visible_order(4, uuids) == expected


def _fake_pynvml() -> types.ModuleType:
    """A stand-in for the NVML bindings with two GPUs, for the reading/labelling code."""
    mod = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    Mem = namedtuple("Mem", "total free used")
    Util = namedtuple("Util", "gpu memory")
    mod.NVMLError = NVMLError
    mod.NVML_TEMPERATURE_GPU = 0
    mod.nvmlInit = lambda: None
    mod.nvmlDeviceGetCount = lambda: 2
    mod.nvmlDeviceGetHandleByIndex = lambda i: i
    mod.nvmlDeviceGetName = lambda h: b"NVIDIA H100 80GB HBM3"
    mod.nvmlDeviceGetUUID = lambda h: f"GPU-{h}"
    mod.nvmlDeviceGetMemoryInfo = lambda h: Mem(
        80 * 2**30, (80 - 10 * (h + 1)) * 2**30, 10 * (h + 1) * 2**30
    )
    mod.nvmlDeviceGetUtilizationRates = lambda h: Util(50 + h, 0)

    def temperature(h: int, kind: int) -> int:
        raise NVMLError("Not Supported")

    mod.nvmlDeviceGetTemperature = temperature
    return mod


def test_nvml_readings_are_converted_and_labelled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml())
    monkeypatch.setattr(gpu, "_NVML", gpu._Nvml())
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    readings = gpu.probe_all()
    assert [(r.device, r.source) for r in readings] == [("nvml:0", "nvml"), ("cuda:0", "nvml")]
    assert readings[1].used == 20 * 2**30 and readings[1].fraction == pytest.approx(0.25)
    assert readings[1].util == 51.0 and readings[1].temperature is None
    assert gpu.probe_for("cuda:0") == readings[1]
    assert gpu.nvml_status() == "NVML: 2 NVIDIA GPU(s) (NVIDIA H100 80GB HBM3)"
