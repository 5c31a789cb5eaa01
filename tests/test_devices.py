"""The device logic with a stubbed device list (no machine of this project has a GPU): precision, batch scaling,
which networks may start, and what a run and a model card record of the device."""

from __future__ import annotations

import os
import platform
import warnings
from pathlib import Path

import keras
import pytest

from cifarmix import architectures, devices, export, models, runinfo, training
from cifarmix.config import PRESETS, TrainConfig, preset
from cifarmix.store import RunStore

ROOT = Path(__file__).resolve().parent.parent
A100 = {"name": "NVIDIA A100-SXM4-40GB", "memory_gib": 40.0}
BF16_CPU = "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n"
PLAIN_CPU = "processor\t: 0\nmodel name\t: Intel(R) Core(TM) i5-8250U\nflags\t\t: fpu sse avx2\n"
NEEDS_GPU = [name for name in architectures.names() if architectures.get(name).needs_gpu]


@pytest.fixture
def machine(monkeypatch):
    """Stub this machine's devices: ``machine(gpus=[...], cpuinfo=...)``; two x86_64 cores."""
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")

    def stub(gpus=(), cpuinfo=PLAIN_CPU) -> devices.Device:
        monkeypatch.setattr(devices, "list_gpus", lambda: [dict(gpu) for gpu in gpus])
        monkeypatch.setattr(devices, "cpu_info", lambda: cpuinfo)
        return devices.detect()

    return stub


def test_a_gpu_trains_in_float16_with_a_scaled_batch_and_starts_the_big_networks(machine):
    gpu = machine(gpus=[A100], cpuinfo=BF16_CPU)
    assert (gpu.kind, gpu.name, gpu.count, gpu.memory_gib) == ("GPU", "NVIDIA A100-SXM4-40GB", 1, 40.0)
    assert gpu.text() == "GPU x1, NVIDIA A100-SXM4-40GB, 40 GiB"
    assert devices.choose_precision("auto", gpu) == "mixed_float16"
    assert devices.choose_precision("float32", gpu) == "float32"  # a precision asked for is kept
    assert [devices.scaled_batch(b, gpu) for b in (64, 256, 512, 2048)] == [256, 1024, 1024, 2048]
    assert NEEDS_GPU and all(devices.startable(name, gpu) for name in NEEDS_GPU)
    assert devices.summary(gpu) == "auto precision mixed_float16, batches x4 (at most 1024)"


@pytest.mark.parametrize("memory, factor", [(80.0, 4), (16.0, 4), (12.0, 2), (8.0, 2), (6.0, 1), (None, 1)])
def test_the_batch_grows_with_the_gpus_memory_and_not_without_knowing_it(machine, memory, factor):
    gpu = machine(gpus=[{"name": "NVIDIA Some GPU", "memory_gib": memory}])
    assert devices.batch_factor(gpu) == factor and devices.scaled_batch(128, gpu) == 128 * factor


def test_several_gpus_are_counted_and_the_smallest_bounds_the_batch(machine):
    gpus = machine(gpus=[A100, {"name": "NVIDIA L4", "memory_gib": 8.0}])
    assert gpus.text() == "GPU x2, NVIDIA A100-SXM4-40GB + NVIDIA L4, 8 GiB each"
    assert devices.batch_factor(gpus) == 2  # one training uses one GPU: the count does not scale the batch


def test_a_bf16_cpu_trains_in_bfloat16_with_the_batch_as_set(machine):
    cpu = machine(cpuinfo=BF16_CPU)
    assert (cpu.kind, cpu.count, cpu.bf16) == ("CPU", 2, True)
    assert cpu.text() == "CPU x2 (x86_64), AMD EPYC 9R14, bf16"
    assert devices.choose_precision("auto", cpu) == "mixed_bfloat16"
    assert devices.scaled_batch(256, cpu) == 256
    assert not any(devices.startable(name, cpu) for name in NEEDS_GPU)
    assert devices.startable("resnet-cpu", cpu)
    amx = machine(cpuinfo=PLAIN_CPU.replace("avx2", "avx2 amx_bf16"))
    assert devices.choose_precision("auto", amx) == "mixed_bfloat16"


def test_a_plain_cpu_trains_in_float32(machine):
    cpu = machine(cpuinfo=PLAIN_CPU)
    assert cpu.text() == "CPU x2 (x86_64), Intel(R) Core(TM) i5-8250U" and not cpu.bf16
    assert devices.choose_precision("auto", cpu) == "float32"
    assert devices.summary(cpu) == "auto precision float32, batches as set"
    assert machine(cpuinfo="").text() == "CPU x2 (x86_64)"  # no /proc/cpuinfo: what Python knows


@pytest.mark.parametrize("name", ["champion", "demo"])
def test_the_auto_presets_train_on_a_bf16_cpu_exactly_as_before(machine, name):
    """On the bf16 CPUs the recipes were measured on, "auto" is the bf16 and batch they always used."""
    config = preset(name)
    assert (config.precision, config.batch_scaling) == ("auto", "auto")
    resolved = devices.resolve(config, machine(cpuinfo=BF16_CPU))
    assert (resolved["precision"], resolved["batch_size"]) == ("mixed_bfloat16", PRESETS[name]["batch_size"])
    gpu = devices.resolve(config, machine(gpus=[A100]))
    assert (gpu["precision"], gpu["batch_size"]) == ("mixed_float16", min(4 * config.batch_size, 1024))


def test_without_batch_scaling_a_gpu_keeps_the_batch(machine):
    resolved = devices.resolve(TrainConfig(batch_size=64, precision="auto"), machine(gpus=[A100]))
    assert resolved["batch_size"] == 64 and resolved["precision"] == "mixed_float16"
    with pytest.raises(ValueError, match="batch scaling must be one of"):
        TrainConfig(batch_scaling="x4").validate()


def test_gpu_memory_is_matched_to_tensorflows_gpus_by_name():
    listed = [{"name": "NVIDIA L4", "memory_gib": 22.5}, {"name": "NVIDIA A100", "memory_gib": 40.0}]
    seen = [{"name": "NVIDIA A100", "memory_gib": None}, {"name": "Other", "memory_gib": None}]
    assert [gpu["memory_gib"] for gpu in devices.with_memory(seen, listed)] == [40.0, None]


def test_nvidia_smi_is_read_for_names_and_memory(tmp_path, monkeypatch):
    tool = tmp_path / "nvidia-smi"
    tool.write_text("#!/bin/sh\necho 'NVIDIA A100-SXM4-40GB, 40960'\necho 'NVIDIA L4, 23034'\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert devices.nvidia_smi_gpus() == [{"name": "NVIDIA A100-SXM4-40GB", "memory_gib": 40.0},
                                         {"name": "NVIDIA L4", "memory_gib": 22.5}]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert devices.nvidia_smi_gpus() == []


def test_this_machine_lists_no_gpu():
    """The real device list of the CPU-only install: no GPU, so the CPU describes where trainings run."""
    assert devices.list_gpus() == [] and devices.detect().kind == "CPU"
    assert training.device_description() == devices.detect().text()


@pytest.fixture
def restore_dtype_policy():
    yield
    keras.mixed_precision.set_dtype_policy("float32")


def test_a_run_records_what_its_device_chose_when_it_starts(machine, tiny_data, restore_dtype_policy):
    """A run created as "auto" is resolved by the training process on a (stubbed) GPU: float16 layers, a 4x batch,
    and the device recorded with the run, in its card text and in its model card's device record."""
    gpu = machine(gpus=[A100])
    store = RunStore()
    config = TrainConfig(arch="allconv", epochs=1, batch_size=8, batch_scaling="auto", steps_per_epoch=2,
                         val_pairs=40, precision="auto").validate()
    run = training.train(config, store)
    assert run["status"] == "finished" and run["device"] == "GPU x1, NVIDIA A100-SXM4-40GB, 40 GiB"
    assert run["config"]["precision"] == "auto" and run["config"]["batch_size"] == 8  # as it was asked for
    assert run["config"]["resolved"] == {"precision": "mixed_float16", "batch_size": 32, "device": gpu.record()}
    assert TrainConfig.from_dict(run["config"]) == config  # the record does not change the config
    best = keras.saving.load_model(run["model_path"], safe_mode=True, compile=False)
    assert best.get_layer("first").dtype_policy.name == "float32"  # the heads stay float32 ...
    assert any(layer.dtype_policy.name == "mixed_float16" for layer in best.layers)  # ... the rest is float16
    trainer = training.Trainer(store, run["id"])  # a resume's model: its loss-scaling optimizer restored whole
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with models.precision_policy("mixed_float16"):
            resumed = trainer.model(trainer.load_state(), steps=2)
    assert isinstance(resumed.optimizer, keras.optimizers.LossScaleOptimizer)  # no "skipping variables" warning
    assert runinfo.config_text(run).startswith("batch 32 (set 8, scaled for the device) · ")
    record = export.device_record(run, config)
    assert record == {**gpu.record(), "precision": "mixed_float16", "batch_size": 32}
    assert export.machine_description(run["device"]).startswith("GPU x1, NVIDIA A100-SXM4-40GB, 40 GiB")


def test_a_resume_keeps_the_first_sessions_choices_on_another_device(machine, tiny_data, restore_dtype_policy):
    store = RunStore()
    config = TrainConfig(arch="allconv", epochs=2, batch_size=8, batch_scaling="auto", steps_per_epoch=2,
                         val_pairs=40, precision="auto").validate()
    run_id = store.create_run(config.arch, config.options, config.to_dict(), config.seed)
    gpu = machine(gpus=[A100])
    trainer = training.Trainer(store, run_id)
    assert trainer.settings(gpu, {"epoch": 0})["batch_size"] == 32
    cpu = machine(cpuinfo=BF16_CPU)
    assert trainer.settings(cpu, {"epoch": 1})["precision"] == "mixed_float16"  # an epoch done: kept
    assert trainer.settings(cpu, {"epoch": 0}) == {"precision": "mixed_bfloat16", "batch_size": 8,
                                                    "device": cpu.record()}  # nothing done yet: chosen again


def test_a_card_of_a_run_from_before_devices_were_recorded_says_what_it_knows():
    run = {"device": "CPU x2 (x86_64)", "config": {"precision": "mixed_bfloat16", "batch_size": 256}}
    config = TrainConfig.from_dict(run["config"])
    assert export.device_record(run, config) == {"text": "CPU x2 (x86_64)", "precision": "mixed_bfloat16",
                                                 "batch_size": 256}


def test_a_cpu_devices_machine_text_names_its_model_once():
    cpu = devices.cpu_device()  # this machine's: machine_description reads its /proc too
    described = export.machine_description(cpu.text())
    assert described.startswith(cpu.text()) and (not cpu.name or described.count(cpu.name) == 1)


@pytest.mark.parametrize("gpus, warned", [([A100], False), ([], True)])
def test_the_train_page_shows_the_device_and_warns_of_a_big_network_only_without_a_gpu(
        machine, tiny_data, fresh_caches, gpus, warned):
    from streamlit.testing.v1 import AppTest

    device = machine(gpus=gpus, cpuinfo=BF16_CPU)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("pages/train.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown = " ".join(str(element.value) for element in at.markdown)
    assert f"**Device:** {device.text()} ({devices.summary(device)})" in shown
    at.selectbox(key="train_arch_smoke").set_value("large-allconv").run()
    assert any("meant for a GPU" in str(warning.value) for warning in at.warning) == warned


def test_the_gpu_requirements_are_the_cpu_ones_with_tensorflows_cuda_build():
    def lines(name):
        text = (ROOT / name).read_text().splitlines()
        return [line.split("#")[0].strip() for line in text if line.split("#")[0].strip()]

    cpu, gpu = lines("requirements.txt"), lines("requirements-gpu.txt")
    assert [line for line in cpu if not line.startswith("tensorflow")] == \
        [line for line in gpu if not line.startswith("tensorflow")]
    assert [line for line in gpu if line.startswith("tensorflow")] == ["tensorflow[and-cuda]>=2.18,<3"]


