"""The machine fingerprint written to env.json, so results from two machines can be told apart."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

# The harness's own libraries; every installed backend adds those it declares (`Backend.libraries`).
LIBRARIES = ("torch", "numpy", "scipy", "pandas", "pyarrow", "segbench")


def _cpuinfo() -> dict[str, Any]:
    info: dict[str, Any] = {"cpu_model": platform.processor() or platform.machine(), "cpu_flags": []}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    cores: set[tuple[str, str]] = set()
    physical = core = ""
    for line in text.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "model name":
            info["cpu_model"] = value
        elif key == "flags" and not info["cpu_flags"]:
            info["cpu_flags"] = sorted(value.split())
        elif key == "physical id":
            physical = value
        elif key == "core id":
            core = value
            cores.add((physical, core))
    if cores:
        info["physical_cores"] = len(cores)
    return info


def _git_commit(repo: Path) -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        branch = git("rev-parse", "--abbrev-ref", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None, "git_branch": None}
    return {
        "git_commit": commit or None,
        "git_dirty": dirty if commit else None,
        "git_branch": branch if commit and branch and branch != "HEAD" else None,  # "HEAD": detached
    }


# where the CPU's frequency policy, memory size and CPU quota are read (tests point them at fake files)
CPUFREQ = Path("/sys/devices/system/cpu/cpu0/cpufreq")
PROC_CPUINFO = Path("/proc/cpuinfo")
PROC_MEMINFO = Path("/proc/meminfo")
CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")


def _read(path: Path) -> str | None:
    """A small system file's text, or None where it is missing or unreadable (containers, other OSes)."""
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _cpu_mhz() -> float | None:
    """cpu0's current frequency: cpufreq's scaling_cur_freq (kHz), else /proc/cpuinfo's first "cpu MHz"."""
    khz = _read(CPUFREQ / "scaling_cur_freq")
    if khz is not None and khz.isdigit():
        return int(khz) / 1000
    for line in (_read(PROC_CPUINFO) or "").splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "cpu MHz":
            try:
                return float(value)
            except ValueError:
                return None
    return None


def cpu_max_mhz() -> tuple[float | None, str]:
    """The frequency the theoretical peak is computed at, and where it was read: cpufreq's
    cpuinfo_max_freq (cpu0's highest, boost included), else /proc/cpuinfo's first "cpu MHz" (the current
    frequency: a virtual machine without cpufreq reports its nominal one there, and boost may run above
    it), else (None, why)."""
    khz = _read(CPUFREQ / "cpuinfo_max_freq")
    if khz is not None and khz.isdigit():
        return int(khz) / 1000, "cpufreq cpuinfo_max_freq"
    for line in (_read(PROC_CPUINFO) or "").splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "cpu MHz":
            try:
                return float(value), "/proc/cpuinfo cpu MHz (current, not the maximum: no cpufreq here)"
            except ValueError:
                break
    return None, "unreadable: no cpufreq cpuinfo_max_freq and no cpu MHz in /proc/cpuinfo"


def _memory_bytes() -> int | None:
    """MemTotal of /proc/meminfo (kB) in bytes."""
    for line in (_read(PROC_MEMINFO) or "").splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "MemTotal:" and fields[1].isdigit():
            return int(fields[1]) * 1024
    return None


def _cgroup_cpu_quota() -> float | None:
    """The CPUs the cgroup may use (quota / period), None when unlimited or unreadable: a container capped
    at 2 CPUs on a 64-core host times differently from the host, whatever `logical_cores` says."""
    quota = period = None
    if (v2 := _read(CGROUP_V2_CPU_MAX)) is not None:  # "max 100000" or "200000 100000"
        fields = v2.split()
        quota, period = fields[0], fields[1] if len(fields) > 1 else "100000"
    elif (v1 := _read(CGROUP_V1_CPU / "cpu.cfs_quota_us")) is not None:  # -1: unlimited
        quota, period = v1, _read(CGROUP_V1_CPU / "cpu.cfs_period_us")
    if quota is None or period is None or not quota.isdigit() or not period.isdigit() or int(period) == 0:
        return None
    return int(quota) / int(period)


def _machine_limits() -> dict[str, Any]:
    """What can make one machine time differently from day to day: its frequency policy and current
    frequency, its memory and the container's CPU quota; each None where it cannot be read."""
    return {
        "cpu_governor": _read(CPUFREQ / "scaling_governor") or None,
        "cpu_mhz": _cpu_mhz(),
        "memory_bytes": _memory_bytes(),
        "cgroup_cpu_quota": _cgroup_cpu_quota(),
    }


def _versions() -> dict[str, str | None]:
    """The harness's libraries, then each installed backend's (torchao for PT2E cells, TensorRT, a plugin's
    runtime): what a reader needs to rebuild any cell of the run."""
    from bench.backend import declared_libraries
    from bench.cache import library_versions

    return library_versions(tuple(dict.fromkeys((*LIBRARIES, *declared_libraries()))))


def _gpu() -> dict[str, Any]:
    try:
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            return {"gpu": props.name, "gpu_memory_mib": props.total_memory // 2**20, "cuda": torch.version.cuda}
    except Exception:  # a broken CUDA install must not stop a CPU benchmark
        pass
    return {"gpu": None}


def collect_environment(threads: int) -> dict[str, Any]:
    repo = Path(__file__).resolve().parent.parent
    return {
        **_cpuinfo(),
        "logical_cores": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "threads": threads,
        "os": platform.platform(),
        "python": platform.python_version(),
        "hostname": platform.node(),
        **_machine_limits(),
        **_gpu(),
        "libraries": _versions(),
        **_git_commit(repo),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def machine_identity(threads: int) -> dict[str, Any]:
    """The fields `machine_fingerprint` reads, without the rest of env.json (every backend's libraries, git,
    sysfs): the reference kernel's record is keyed on them at the start of every run."""
    return {**_cpuinfo(), "logical_cores": os.cpu_count(), "threads": threads, **_gpu()}


def machine_fingerprint(env: dict[str, Any]) -> tuple:
    """The parts of env.json that make two machines' timings incomparable when they differ."""
    return (env.get("cpu_model"), env.get("logical_cores"), env.get("gpu"), env.get("threads"))


def combined_fingerprint(envs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fingerprint fields of a run measured on several machines (a merge, a Ray run): each field's one
    value, or its values joined with " | ", so a comparison with it warns about the hardware."""
    combined = {}
    for key in ("cpu_model", "logical_cores", "gpu", "threads"):  # machine_fingerprint's fields
        values = list(dict.fromkeys(env.get(key) for env in envs))
        combined[key] = values[0] if len(values) == 1 else " | ".join(str(v) for v in values)
    return combined


def machine_label(env: dict[str, Any]) -> str:
    """A row's `machine` column where rows of several machines share a table (`segbench merge`, Ray)."""
    return f"{env.get('cpu_model')}, {env.get('logical_cores')} cores, gpu {env.get('gpu') or 'none'}"


def default_threads() -> int:
    """Physical cores available to this process: hyper-threads rarely help inference and add noise."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    physical = _cpuinfo().get("physical_cores") or available
    return max(1, min(available, physical))
