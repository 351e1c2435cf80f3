"""Interleaved timing: every cell gets rounds in turn, in a shuffled order, until it has its minimum."""

from bench.run.rounds import time_cells


class FakeKernel:
    quietest_ms = 1.0

    def measure(self) -> float:
        return 1.0


class FakeCell:
    def __init__(self, name: str, rounds_needed: int, log: list[str]) -> None:
        self.name, self.rounds_needed, self.log, self.rounds = name, rounds_needed, log, 0

    @property
    def needs_more(self) -> bool:
        return self.rounds < self.rounds_needed

    def time_round(self, kernel) -> None:
        assert isinstance(kernel, FakeKernel)
        self.rounds += 1
        self.log.append(self.name)

    def finish(self) -> str:
        return f"{self.name} done after {self.rounds}"


def test_cells_take_turns_in_shuffled_rounds_until_each_has_its_minimum():
    log: list[str] = []
    cells = [FakeCell("a", 3, log), FakeCell("b", 3, log), FakeCell("c", 1, log)]
    outcomes = time_cells(cells, FakeKernel())  # type: ignore[arg-type]
    assert outcomes == ["a done after 3", "b done after 3", "c done after 1"]  # in the cells' order
    # one turn each per round, in a seeded shuffle: no backend always runs right after the same one
    assert log == ["a", "c", "b", "b", "a", "a", "b"]
