"""env.json's machine limits read from fake system files: each value where readable, null where not, never an error."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench import environment
from bench.environment import collect_environment


@pytest.fixture
def fake_sys(tmp_path, monkeypatch) -> Path:
    """Every path the limits are read from, pointed into an empty folder."""
    monkeypatch.setattr(environment, "CPUFREQ", tmp_path / "cpufreq")
    monkeypatch.setattr(environment, "PROC_CPUINFO", tmp_path / "cpuinfo")
    monkeypatch.setattr(environment, "PROC_MEMINFO", tmp_path / "meminfo")
    monkeypatch.setattr(environment, "CGROUP_V2_CPU_MAX", tmp_path / "cpu.max")
    monkeypatch.setattr(environment, "CGROUP_V1_CPU", tmp_path / "cpu")
    (tmp_path / "cpufreq").mkdir()
    (tmp_path / "cpu").mkdir()
    return tmp_path


def test_every_limit_read_from_its_file(fake_sys):
    (fake_sys / "cpufreq" / "scaling_governor").write_text("performance\n")
    (fake_sys / "cpufreq" / "scaling_cur_freq").write_text("2400000\n")  # kHz
    (fake_sys / "meminfo").write_text("MemTotal:       16384000 kB\nMemFree:  1 kB\n")
    (fake_sys / "cpu.max").write_text("200000 100000\n")
    assert environment._machine_limits() == {
        "cpu_governor": "performance",
        "cpu_mhz": 2400.0,
        "memory_bytes": 16384000 * 1024,
        "cgroup_cpu_quota": 2.0,
    }


def test_fallbacks_cpuinfo_and_cgroup_v1(fake_sys):
    (fake_sys / "cpuinfo").write_text("processor\t: 0\ncpu MHz\t\t: 2596.122\n")
    (fake_sys / "cpu" / "cpu.cfs_quota_us").write_text("150000\n")
    (fake_sys / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    limits = environment._machine_limits()
    assert limits["cpu_mhz"] == pytest.approx(2596.122) and limits["cgroup_cpu_quota"] == 1.5


@pytest.mark.parametrize("v2, v1", [("max 100000", None), (None, "-1"), ("garbage", None)])
def test_no_quota_is_null(fake_sys, v2, v1):
    if v2 is not None:
        (fake_sys / "cpu.max").write_text(v2)
    if v1 is not None:
        (fake_sys / "cpu" / "cpu.cfs_quota_us").write_text(v1)
        (fake_sys / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert environment._cgroup_cpu_quota() is None


def test_nothing_readable_is_all_null(fake_sys):
    (fake_sys / "cpuinfo").write_text("cpu MHz : fast\n")
    (fake_sys / "meminfo").write_bytes(b"\xff\xfe")
    assert environment._machine_limits() == dict.fromkeys(
        ("cpu_governor", "cpu_mhz", "memory_bytes", "cgroup_cpu_quota")
    )


def test_the_max_frequency_and_where_it_was_read(fake_sys):
    assert environment.cpu_max_mhz() == (
        None,
        "unreadable: no cpufreq cpuinfo_max_freq and no cpu MHz in /proc/cpuinfo",
    )
    (fake_sys / "cpuinfo").write_text("processor\t: 0\ncpu MHz\t\t: 2596.122\n")
    assert environment.cpu_max_mhz() == (2596.122, "/proc/cpuinfo cpu MHz (current, not the maximum: no cpufreq here)")
    (fake_sys / "cpufreq" / "cpuinfo_max_freq").write_text("3700000\n")  # kHz
    assert environment.cpu_max_mhz() == (3700.0, "cpufreq cpuinfo_max_freq")


def test_git_branch_and_a_detached_head(tmp_path, monkeypatch):
    def git(args: str, branch: str):
        outputs = {"rev-parse HEAD": "abc123", "status --porcelain --untracked-files=no": "", "--abbrev-ref": branch}
        key = next(k for k in outputs if k in args)
        return subprocess.CompletedProcess(args, 0, stdout=outputs[key] + "\n", stderr="")

    monkeypatch.setattr(subprocess, "run", lambda cmd, **_: git(" ".join(cmd), "main"))
    assert environment._git_commit(tmp_path)["git_branch"] == "main"
    monkeypatch.setattr(subprocess, "run", lambda cmd, **_: git(" ".join(cmd), "HEAD"))
    assert environment._git_commit(tmp_path) == {"git_commit": "abc123", "git_dirty": False, "git_branch": None}


def test_not_a_repository_or_no_git(tmp_path, monkeypatch):
    assert environment._git_commit(tmp_path)["git_branch"] is None  # tmp_path is no repository

    def missing(*_, **__):
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", missing)
    assert environment._git_commit(tmp_path) == {"git_commit": None, "git_dirty": None, "git_branch": None}


def test_env_json_holds_the_new_keys(fake_sys):
    env = collect_environment(threads=1)
    assert {"git_branch", "cpu_governor", "cpu_mhz", "memory_bytes", "cgroup_cpu_quota"} <= set(env)


def test_the_machine_identity_gives_the_fingerprint_of_the_whole_environment():
    from bench.environment import machine_fingerprint, machine_identity

    assert machine_fingerprint(machine_identity(2)) == machine_fingerprint(collect_environment(2))
