"""A damaged run file is one line naming it and what is wrong (a UsageError), never pyarrow's traceback."""

from __future__ import annotations

import io
import threading

import pandas as pd
import pytest

from bench.cache import atomic_write_bytes
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


def test_a_table_replaced_while_it_is_read_is_read_whole(tmp_path):
    """A run or tune rewrites its tables atomically while readers poll them: reading by path opened the
    file twice and mixed two versions (31 of 500 reads failed); one read of the bytes sees one version."""
    path = tmp_path / "calibration.parquet"
    versions = []
    for rows in (2, 60):
        buffer = io.BytesIO()
        pd.DataFrame({"a": range(rows), "b": [f"row {i}" * 3 for i in range(rows)]}).to_parquet(buffer)
        versions.append(buffer.getvalue())
    atomic_write_bytes(path, versions[0])
    stop = threading.Event()

    def rewrite() -> None:
        turn = 0
        while not stop.is_set():
            atomic_write_bytes(path, versions[turn % 2])
            turn += 1

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:
        lengths = {len(read_table(path)) for _ in range(500)}
    finally:
        stop.set()
        writer.join()
    assert lengths <= {2, 60}


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


CELL = {"suite": ["s"], "model": ["m"], "backend": ["b"], "precision": ["fp32"], "device": ["cpu"], "batch_size": [1]}


def _versioned_table(path, version: bytes) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(pd.DataFrame({**CELL, "status": ["ok"]}), preserve_index=False)
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, b"segbench_schema_version": version}), path)


def test_a_folder_without_a_version_reads_as_version_0(tmp_path):
    from bench.results.files import check_version

    pd.DataFrame({**CELL, "status": ["ok"]}).to_parquet(tmp_path / "results.parquet")  # as before versions
    (tmp_path / "env.json").write_text('{"threads": 2}')
    check_run_folder(tmp_path)
    assert list(read_results(tmp_path).status) == ["ok"] and read_json(tmp_path / "env.json") == {"threads": 2}
    assert check_version(tmp_path, None) == 0 and check_version(tmp_path, b"1") == 1


def test_a_newer_version_is_refused_in_one_line_naming_both(tmp_path):
    from bench.cli import main
    from bench.results.files import SCHEMA_VERSION

    newer = SCHEMA_VERSION + 1
    _versioned_table(tmp_path / "results.parquet", str(newer).encode())
    with pytest.raises(UsageError) as table_error:
        read_results(tmp_path)
    message = str(table_error.value)
    assert "\n" not in message and f"version {newer}" in message and f"version {SCHEMA_VERSION}" in message
    _versioned_table(tmp_path / "results.parquet", str(SCHEMA_VERSION).encode())
    read_results(tmp_path)  # this version reads
    (tmp_path / "env.json").write_text(f'{{"schema_version": {newer}}}')
    with pytest.raises(UsageError, match=f"schema version {newer}, this segbench reads up to version"):
        check_run_folder(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    (tmp_path / "env.json").write_text('{"schema_version": "one"}')
    with pytest.raises(UsageError, match="is not a number"):
        read_json(tmp_path / "env.json")
