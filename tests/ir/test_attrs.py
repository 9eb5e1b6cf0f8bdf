"""Typed attr reads: `Attrs.int`, `.float`, ... give the value of the asked kind, and a
value of another kind is a one-line AttrError naming the key and what was found."""
import pytest

from vcompile.ir import Attrs
from vcompile.ir.graph import AttrError

A = Attrs(axis=-1, eps=1e-5, whole=2, flag=True, mode="nearest", pads=(0, 1, 0, 1),
          scales=(1, 2.5), shape=(1, "N", 8), empty=())


def test_reads_give_the_stored_values() -> None:
    assert A.int("axis") == -1
    assert A.float("eps") == 1e-5
    assert A.bool("flag") is True
    assert A.str("mode") == "nearest"
    assert A.ints("pads") == (0, 1, 0, 1)
    assert A.dims("shape") == (1, "N", 8)
    assert A.ints("empty") == () and A.floats("empty") == () and A.dims("empty") == ()


def test_an_int_reads_as_a_float_as_the_schema_allows() -> None:
    assert A.float("whole") == 2.0 and type(A.float("whole")) is float
    assert A.floats("scales") == (1.0, 2.5)
    assert all(type(s) is float for s in A.floats("scales"))


def test_ints_read_as_dims() -> None:
    assert A.dims("pads") == (0, 1, 0, 1)


@pytest.mark.parametrize("read, key, message", [
    ("int", "flag", "attr 'flag' is a bool True, expected an int"),
    ("int", "eps", "attr 'eps' is a float 1e-05, expected an int"),
    ("bool", "whole", "attr 'whole' is an int 2, expected a bool"),
    ("float", "mode", "attr 'mode' is a str 'nearest', expected a float"),
    ("float", "flag", "attr 'flag' is a bool True, expected a float"),
    ("str", "pads", "attr 'pads' is a tuple of int (0, 1, 0, 1), expected a str"),
    ("ints", "axis", "attr 'axis' is an int -1, expected a tuple of ints"),
    ("ints", "shape", "attr 'shape' is a tuple of int/str (1, 'N', 8), expected a tuple of ints"),
    ("ints", "scales", "attr 'scales' is a tuple of float/int (1, 2.5), expected a tuple of ints"),
    ("floats", "shape", "attr 'shape' is a tuple of int/str (1, 'N', 8), expected a tuple of floats"),
    ("dims", "scales", "attr 'scales' is a tuple of float/int (1, 2.5), expected a tuple of dims"),
])
def test_a_value_of_another_kind_is_a_one_line_error(read: str, key: str, message: str) -> None:
    with pytest.raises(AttrError) as e:
        getattr(A, read)(key)
    assert str(e.value) == message
    assert "\n" not in str(e.value)


def test_a_bool_in_a_tuple_is_not_an_int() -> None:
    with pytest.raises(AttrError, match="expected a tuple of ints"):
        Attrs(pads=(0, True)).ints("pads")


def test_a_missing_key_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        A.int("groups")


def test_the_op_table_error_is_the_same_class() -> None:
    from vcompile.ir.ops import AttrError as OpsAttrError
    assert OpsAttrError is AttrError
