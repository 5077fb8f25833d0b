import numpy as np
import pytest

from hf_prune.errors import InvalidArgumentError
from hf_prune.validation import check_int, check_number, is_int, is_number


def test_check_int_ranges_and_types():
    assert check_int("k", np.int64(3), minimum=1) == 3 and type(check_int("k", np.int64(3))) is int
    assert check_int("k", None, minimum=1, allow_none=True) is None
    with pytest.raises(InvalidArgumentError, match=r"^`k` must be a positive integer, got True\.$"):
        check_int("k", True, minimum=1)
    with pytest.raises(InvalidArgumentError, match=r"`k` must be a non-negative integer or None, got -1\."):
        check_int("k", -1, minimum=0, allow_none=True)
    with pytest.raises(InvalidArgumentError, match=r"`k` must be an integer of at least 2, got 1"):
        check_int("k", 1, minimum=2)
    with pytest.raises(InvalidArgumentError, match=r"`k` must be an integer in \[0, 2\], got 3"):
        check_int("k", 3, 0, 2)
    with pytest.raises(InvalidArgumentError, match=r"^Score `x`: `k` must be an integer, got np\.int64\(1\)\. Hint\.$"):
        check_int("k", np.int64(1), numpy=False, hint="Hint.", context="Score `x`")


def test_check_number_bounds_nan_and_inf():
    assert check_number("p", 1, 0, 1, low_open=True) == 1.0
    assert check_number("t", float("inf"), 0, low_open=True) == float("inf")
    with pytest.raises(InvalidArgumentError, match=r"`t` must be a positive number, got inf"):
        check_number("t", float("inf"), 0, low_open=True, finite=True)
    with pytest.raises(InvalidArgumentError, match=r"`p` must be a number in \[0, 1\), got nan"):
        check_number("p", float("nan"), 0, 1, high_open=True)
    with pytest.raises(InvalidArgumentError, match=r"`p` must be a non-negative number, got False"):
        check_number("p", False, 0)
    with pytest.raises(InvalidArgumentError, match=r"`p` must be 'auto' or a share, got np\.float32"):
        check_number("p", np.float32(0.5), accepted="'auto' or a share")
    assert check_number("p", np.float32(0.5), numpy=True) == 0.5
    assert is_int(np.int8(1)) and not is_int(np.int8(1), numpy=False) and not is_number(True)
