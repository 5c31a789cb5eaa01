"""Where a training runs, and what it chooses there: its precision, its batch size, which networks it may start.

:func:`detect` describes this process's device (a :class:`Device`): the GPUs TensorFlow sees
(``tf.config.list_physical_devices("GPU")``; names from ``tf.config.experimental.get_device_details``, memory
from ``nvidia-smi``, which ships with NVIDIA's driver), else the CPU (cores, model and bf16 support from
``/proc/cpuinfo``). Nothing here allocates GPU memory: a web server that asks keeps the GPU free for trainings.

The rules, for a config that asks for them:

* precision ``"auto"`` (:func:`choose_precision`): ``mixed_float16`` on a GPU (Keras then scales the loss),
  ``mixed_bfloat16`` on a CPU that has bf16 instructions (``avx512_bf16`` or ``amx_bf16``), ``float32`` otherwise;
* batch scaling ``"auto"`` (:func:`scaled_batch`): on a GPU with at least 16 GiB the batch is multiplied by 4,
  with at least 8 GiB by 2, never past ``MAX_SCALED_BATCH`` pairs (unless the batch already is larger); on a CPU,
  or a GPU of unknown or smaller memory, it stays as configured. Steps per epoch and the learning rate stay as
  configured: each step averages more pairs, on the same schedule. One training uses one GPU, so a second GPU
  does not scale the batch;
* a network the registry marks ``needs_gpu`` is meant to be started only where a GPU is present (:func:`startable`).

``training`` resolves them when the training process starts (a run may be created on one machine and trained on
another) and records the result with the run (:func:`resolve`).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path

from cifarmix import architectures

GPU, CPU = "GPU", "CPU"
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
MAX_SCALED_BATCH = 1024  # the most pairs per step batch scaling goes to
BATCH_FACTORS = ((16.0, 4), (8.0, 2))  # (GiB of GPU memory at least, batch factor), the largest first
NVIDIA_SMI_SECONDS = 10


@dataclass(frozen=True)
class Device:
    """What a training runs on.

    Attributes:
        kind: ``"GPU"`` or ``"CPU"``.
        name: the GPU's model (``NVIDIA A100-SXM4-40GB``) or the CPU's (``AMD EPYC``); "" when unknown.
        count: GPUs, or CPU cores.
        memory_gib: memory of one GPU in GiB (None: a CPU, or unknown).
        machine: the processor architecture (``x86_64``).
        bf16: the CPU has bf16 instructions (False for a GPU: its precision does not depend on it).
    """

    kind: str
    name: str
    count: int
    memory_gib: float | None = None
    machine: str = ""
    bf16: bool = False

    @property
    def is_gpu(self) -> bool:
        return self.kind == GPU

    def text(self) -> str:
        """For pages, run and model cards: ``GPU x1, NVIDIA A100-SXM4-40GB, 40 GiB`` or
        ``CPU x2 (x86_64), AMD EPYC, bf16``."""
        if self.is_gpu:
            parts = [f"GPU x{self.count}", self.name]
            if self.memory_gib is not None:
                parts.append(f"{self.memory_gib:g} GiB" + (" each" if self.count > 1 else ""))
        else:
            parts = [f"CPU x{self.count} ({self.machine})", self.name, "bf16" if self.bf16 else ""]
        return ", ".join(part for part in parts if part)

    def record(self) -> dict:
        """The device as a run's config and a model card keep it (JSON values, with its text)."""
        return {**asdict(self), "text": self.text()}


# ---------------------------------------------------------------------------------------------- detection


def list_gpus() -> list[dict]:
    """The GPUs TensorFlow sees, each ``{"name": ..., "memory_gib": ... or None}`` ([] without any)."""
    import tensorflow as tf

    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = {}
        with contextlib.suppress(Exception):  # details are optional: a name is enough
            details = tf.config.experimental.get_device_details(gpu)
        found.append({"name": details.get("device_name") or gpu.name, "memory_gib": None})
    return with_memory(found, nvidia_smi_gpus())


def nvidia_smi_gpus() -> list[dict]:
    """Every NVIDIA GPU of the machine as ``nvidia-smi`` lists it (name, memory in GiB); [] without the tool."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return []
    try:
        output = subprocess.run([tool, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                                capture_output=True, text=True, timeout=NVIDIA_SMI_SECONDS, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in output.splitlines():
        name, _, mebibytes = line.rpartition(",")
        with contextlib.suppress(ValueError):
            gpus.append({"name": name.strip(), "memory_gib": round(float(mebibytes) / 1024, 1)})
    return gpus


def with_memory(gpus: list[dict], listed: list[dict]) -> list[dict]:
    """``gpus`` (TensorFlow's) with the memory of the ``nvidia-smi`` entry of the same name, each entry used once
    (the two may order GPUs differently, and ``CUDA_VISIBLE_DEVICES`` may hide some); unmatched: unknown memory."""
    unused = list(listed)
    result = []
    for gpu in gpus:
        match = next((entry for entry in unused if entry["name"] == gpu["name"]), None)
        if match is not None:
            unused.remove(match)
        result.append({**gpu, "memory_gib": match["memory_gib"] if match else gpu.get("memory_gib")})
    return result


def cpu_info() -> str:
    """``/proc/cpuinfo`` ("" where there is none)."""
    with contextlib.suppress(OSError):
        return Path("/proc/cpuinfo").read_text()
    return ""


def cpu_device(info: str | None = None) -> Device:
    """This machine's CPU: cores, model and bf16 support, from ``info`` (default: ``/proc/cpuinfo``)."""
    info = cpu_info() if info is None else info
    lines = info.splitlines()
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    flags = set(next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), []))
    return Device(CPU, model, os.cpu_count() or 1, machine=platform.machine(),
                  bf16=any(flag in flags for flag in BF16_FLAGS))


def detect() -> Device:
    """This process's training device: its GPUs if TensorFlow sees any, else its CPU."""
    gpus = list_gpus()
    if not gpus:
        return cpu_device()
    memories = [gpu["memory_gib"] for gpu in gpus]
    names = list(dict.fromkeys(gpu["name"] for gpu in gpus))  # a mixed machine lists each model once
    memory = None if None in memories else min(memories)  # a batch must fit the smallest
    return Device(GPU, " + ".join(names), len(gpus), memory, platform.machine())


# ------------------------------------------------------------------------------------------------- choices


def choose_precision(requested: str, device: Device) -> str:
    """The Keras dtype policy to train in: ``requested`` itself unless it is ``"auto"`` (see the module's rules)."""
    if requested != "auto":
        return requested
    if device.is_gpu:
        return "mixed_float16"
    return "mixed_bfloat16" if device.bf16 else "float32"


def batch_factor(device: Device) -> int:
    """How many times the batch grows on ``device`` under batch scaling (1 on a CPU or an unknown GPU)."""
    if not device.is_gpu or device.memory_gib is None:
        return 1
    return next((factor for gib, factor in BATCH_FACTORS if device.memory_gib >= gib), 1)


def scaled_batch(batch: int, device: Device) -> int:
    """``batch`` times :func:`batch_factor`, never past ``MAX_SCALED_BATCH`` (a larger batch stays as it is)."""
    return max(batch, min(batch * batch_factor(device), MAX_SCALED_BATCH))


def startable(arch: str, device: Device) -> bool:
    """Whether architecture ``arch`` is meant to train on ``device``: a ``needs_gpu`` network only on a GPU."""
    return device.is_gpu or not architectures.get(arch).needs_gpu


def resolve(config, device: Device) -> dict:
    """What a run trains with on ``device``: ``{"precision", "batch_size", "device"}`` (a TrainConfig's "auto"
    precision and batch scaling made concrete; the device as :meth:`Device.record` gives it)."""
    batch = scaled_batch(config.batch_size, device) if config.batch_scaling == "auto" else config.batch_size
    return {"precision": choose_precision(config.precision, device), "batch_size": batch, "device": device.record()}


def summary(device: Device) -> str:
    """What ``"auto"`` settings choose on ``device``, for the Train page: ``auto precision mixed_bfloat16,
    batches as set`` / ``auto precision mixed_float16, batches x4 (at most 1024)``."""
    factor = batch_factor(device)
    batches = f"batches x{factor} (at most {MAX_SCALED_BATCH})" if factor > 1 else "batches as set"
    return f"auto precision {choose_precision('auto', device)}, {batches}"


def applied(config, resolved: dict):
    """``config`` as it trains: its precision and batch size replaced by those ``resolve`` chose."""
    return dataclasses.replace(config, precision=resolved["precision"], batch_size=resolved["batch_size"])
