"""A damaged run file is one line naming it and what is wrong (a UsageError), never pyarrow's traceback."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.errors import UsageError
from bench.results.files import check_run_folder, read_json, read_results, read_table


def _table(path, **columns) -> None:
    pd.DataFrame(columns or {"a": [1, 2, 3]}).to_parquet(path)


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_truncated_table_names_the_file_and_the_damage(tmp_path):
    path = tmp_path / "samples.parquet"
    _table(path)
    _truncate(path)
    with pytest.raises(UsageError) as error:
        read_table(path)
    message = str(error.value)
    assert message.startswith(f"{path}: damaged or unreadable Parquet table (Parquet magic bytes not found")
    assert len(message.splitlines()) == 1 and message.count(str(path)) == 1  # pyarrow's own copy of it cut


def test_an_empty_file_and_a_missing_one_are_named_too(tmp_path):
    (tmp_path / "results.parquet").write_bytes(b"")
    with pytest.raises(UsageError, match="Parquet file size is 0 bytes"):
        read_results(tmp_path)
    with pytest.raises(UsageError, match="no such file"):
        read_table(tmp_path / "per_image.parquet")


def test_a_results_table_without_the_cell_columns_is_not_a_run(tmp_path):
    _table(tmp_path / "results.parquet", suite=["s"], status=["ok"])
    with pytest.raises(UsageError, match=r"without the column\(s\) model, backend, precision, device, batch_size"):
        read_results(tmp_path)


def test_broken_json_and_json_of_another_shape(tmp_path):
    (tmp_path / "env.json").write_text('{"cpu_model": "x",')
    with pytest.raises(UsageError) as error:
        read_json(tmp_path / "env.json")
    assert str(error.value).startswith(f"{tmp_path / 'env.json'}: damaged or unreadable JSON file (JSONDecodeError: ")
    (tmp_path / "run.json").write_text("[1, 2]")
    with pytest.raises(UsageError, match="a JSON list, expected an object"):
        read_json(tmp_path / "run.json")
    (tmp_path / "per_backend.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(UsageError, match="UnicodeDecodeError"):
        read_json(tmp_path / "per_backend.json")


def test_checking_a_folder_reads_every_file_it_holds(tmp_path):
    _table(
        tmp_path / "results.parquet",
        **{c: ["x"] for c in ("suite", "model", "backend", "precision", "device")},
        batch_size=[1],
        status=["ok"],
    )
    _table(tmp_path / "gradcam.parquet")
    (tmp_path / "env.json").write_text("{}")
    check_run_folder(tmp_path)  # all readable; the files it lacks are not its business
    _truncate(tmp_path / "gradcam.parquet")
    with pytest.raises(UsageError, match="gradcam.parquet: damaged"):
        check_run_folder(tmp_path)
