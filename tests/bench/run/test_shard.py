"""`--shard K/N`: whole comparison groups, dealt by a content hash, stable and balanced; bad values are one line."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from bench.cli import main
from bench.errors import UsageError
from bench.run.shard import Shard, ShardPlan, assign_groups, group_key, parse_shard

BACKENDS = ("torch-eager/fp32", "ort/fp32", "ort-qdq-int8/int8")


def matrix(suites: int, models: int) -> dict[tuple, tuple[str, ...]]:
    """A planned matrix as `plan_matrix` spells it: group -> its cells' ids."""
    groups = [(f"suite{s}", f"model{m}", "cpu", 1) for s in range(suites) for m in range(models)]
    return {g: tuple(f"{g[0]}/{g[1]}/{b}/cpu/1" for b in BACKENDS) for g in groups}


def test_parse_shard_takes_k_of_n() -> None:
    assert parse_shard("2/3") == Shard(2, 3) and str(Shard(2, 3)) == "2/3"
    assert parse_shard(" 1/1 ") == Shard(1, 1)


@pytest.mark.parametrize("text", ["0/2", "3/2", "a/b", "2", "1/0", "-1/2", "1/2/3", ""])
def test_a_bad_shard_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="expected K/N with 1 <= K <= N"):
        parse_shard(text)


def test_every_group_is_in_exactly_one_shard_and_its_cells_stay_together() -> None:
    planned = matrix(5, 7)
    for count in (1, 2, 3, 4, 8):
        plans = [ShardPlan.of(Shard(k, count), planned) for k in range(1, count + 1)]
        taken = Counter(group for plan in plans for group in plan.groups)
        assert set(taken) == set(planned) and set(taken.values()) == {1}
        for plan in plans:  # a shard's record lists whole groups, each with every cell of the matrix's group
            record = plan.record()["shard"]
            assert record["groups"] == [group_key(g) for g in plan.groups]
            assert record["matrix"] == {group_key(g): list(cells) for g, cells in planned.items()}


@pytest.mark.parametrize("groups,count", [(35, 2), (35, 3), (35, 8), (100, 7), (4, 4), (5, 3)])
def test_shards_are_balanced_within_one_group(groups: int, count: int) -> None:
    sizes = Counter(assign_groups((f"suite/model{i}/cpu/1" for i in range(groups)), count).values())
    assert set(sizes) == set(range(1, count + 1))  # no empty shard while there are at least N groups
    assert max(sizes.values()) - min(sizes.values()) <= 1


def test_the_assignment_does_not_depend_on_order_or_the_python_process() -> None:
    keys = [f"synthetic-nuclei/{m}/cpu/1" for m in ("unet", "deeplabv3plus-resnet18", "hrnet-w18-small", "vgg16-unet")]
    here = assign_groups(keys, 2)
    assert assign_groups(reversed(keys), 2) == here
    # a content hash (SHA-256), not the salted built-in hash(): the same dealing in every process and machine
    assert here == {keys[0]: 1, keys[1]: 2, keys[2]: 1, keys[3]: 2}


def test_more_shards_than_groups_leaves_some_empty_and_says_so() -> None:
    planned = matrix(1, 2)
    plans = [ShardPlan.of(Shard(k, 3), planned) for k in (1, 2, 3)]
    assert sorted(len(plan.groups) for plan in plans) == [0, 1, 1]
    empty = next(plan for plan in plans if not plan.groups)
    assert "no group of this matrix falls to it (2 comparison group(s) over 3 shards)" in empty.note()
    assert ShardPlan.of(None, planned).groups == tuple(planned) and ShardPlan.of(None, planned).record() == {}


@pytest.mark.parametrize("value", ["0/2", "3/2", "a/b"])
def test_a_bad_shard_option_is_one_line_exit_2_and_writes_nothing(value, capsys, tmp_path) -> None:
    results = tmp_path / "results"
    with pytest.raises(SystemExit) as exited:
        main(["run", "--backends", "torch-eager", "--out", str(results), "--shard", value])
    err = capsys.readouterr().err.strip()
    assert exited.value.code == 2 and len(err.splitlines()) == 1
    assert f"argument --shard: '{value}' is not valid; expected K/N with 1 <= K <= N" in err
    assert not results.exists()


def test_resume_refuses_a_shard_beside_it(capsys, tmp_path) -> None:
    run_dir = tmp_path / "results" / "run1"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text("{}")
    assert main(["run", "--resume", str(run_dir), "--shard", "1/2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith("drop --shard")
    assert [p.name for p in run_dir.iterdir()] == ["run.json"]


def test_the_shard_is_saved_with_the_run_so_resume_keeps_it(tmp_path) -> None:
    from bench.run.config import RunConfig, load_run_config, save_run_config

    save_run_config(RunConfig(backends=("torch-eager",), shard=Shard(2, 3)), tmp_path)
    assert json.loads((tmp_path / "run.json").read_text())["shard"] == {"index": 2, "count": 3}
    assert load_run_config(tmp_path).shard == Shard(2, 3)
    save_run_config(RunConfig(backends=("torch-eager",)), tmp_path)
    assert load_run_config(tmp_path).shard is None
