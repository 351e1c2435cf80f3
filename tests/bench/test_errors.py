"""The errors every part of segbench raises the same way: an unknown name with the valid ones, and a
failure as one line for a row's status."""

from __future__ import annotations

from bench.errors import UsageError, one_line, unknown_name


def test_an_unknown_name_lists_the_valid_ones_sorted():
    error = unknown_name("model", "nope", ["vgg16-unet", "unet", "hrnet-w18-small"])
    assert isinstance(error, UsageError)
    assert str(error) == "unknown model 'nope'; valid models: hrnet-w18-small, unet, vgg16-unet"


def test_one_line_keeps_every_line_of_the_message_joined():
    exc = RuntimeError(
        "Check 'rank' failed at range.hpp:47:\n  While validating node 'Range'\n\n  'stop' is not a scalar "
    )
    assert one_line(exc) == (
        "RuntimeError: Check 'rank' failed at range.hpp:47: While validating node 'Range' 'stop' is not a scalar"
    )


def test_one_line_is_the_type_alone_without_a_message_and_cut_at_its_limit():
    assert one_line(ValueError()) == "ValueError"
    assert one_line(ValueError("  \n ")) == "ValueError"
    assert one_line(ValueError("abc"), limit=15) == "ValueError: abc"  # exactly the limit: kept whole
    assert one_line(ValueError("abcd"), limit=15) == "ValueError: ab…"  # one over: cut, the mark included
