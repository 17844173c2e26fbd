import math

import pytest
from hypothesis import given, strategies as st

from tfbert.labels import LabelFormat

WHERE = "d.csv: line 7"
CLASSES, TAGS, SCORES = LabelFormat(), LabelFormat("multi_label", "|"), LabelFormat("regression")


def parse(fmt, value, column="label"):
    return fmt.parse({column: value}, "label", WHERE)


def test_classification_labels_are_stripped_strings():
    assert parse(CLASSES, " pos ") == "pos" and parse(CLASSES, 1) == "1" and parse(CLASSES, "1") == "1"
    assert parse(CLASSES, None) is None and parse(CLASSES, "  ") is None and parse(CLASSES, math.nan) is None


@pytest.mark.parametrize("value", [["a", "b"], '["a", "b"]'])
def test_a_list_under_classification_names_the_flag(value):
    with pytest.raises(ValueError, match="d.csv: line 7: the label .* is a list of labels; .*--task multi_label"):
        parse(CLASSES, value)


def test_multi_label_forms():
    assert parse(TAGS, "b| a |b") == ("a", "b")  # stripped, merged, sorted
    assert parse(TAGS, ["x", " y", "x"]) == ("x", "y")  # a JSONL list
    assert parse(TAGS, '["x", "y"]') == ("x", "y")  # a JSON list in a CSV cell
    assert parse(TAGS, "") == () and parse(TAGS, []) == ()  # the empty set is a valid row
    assert parse(TAGS, None) is None
    assert parse(LabelFormat("multi_label"), "a,b") == ("a", "b")  # the default separator


def test_wide_form():
    wide = LabelFormat("multi_label", columns=("price", "delivery"))
    assert wide.parse({"price": "1", "delivery": 0}, "label", WHERE) == ("price",)
    assert wide.parse({"price": "1.0", "delivery": "true"}, "label", WHERE) == ("delivery", "price")
    assert wide.parse({"price": 0, "delivery": "0"}, "label", WHERE) == ()
    with pytest.raises(ValueError, match="d.csv: line 7: column 'price' holds 'yes'; --label-columns take 0 or 1"):
        wide.parse({"price": "yes", "delivery": "0"}, "label", WHERE)


@given(st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_regression_reads_any_spelling_of_a_number(number):
    for spelling in (number, repr(number), f"  {number}  ", f"{number:e}"):
        assert parse(SCORES, spelling) == pytest.approx(float(number), rel=1e-6, abs=1e-30)


@pytest.mark.parametrize("value,message", [
    ("good", "the label 'good' is not a number; --task regression takes one number per text"),
    ("nan", "the label 'nan' is not a finite number"),
    ("inf", "the label 'inf' is not a finite number"),
    (True, "the label True is not a number"),
    ([1, 2], r"the label \[1, 2\] is not a number"),
])
def test_regression_refuses_what_is_not_a_finite_number(value, message):
    with pytest.raises(ValueError, match=f"d.csv: line 7: {message}"):
        parse(SCORES, value)


def test_scores_under_classification_name_the_flag():
    CLASSES.check(["1", "2", "1"], "d.csv")  # integer classes are fine
    with pytest.raises(ValueError, match="looks like a score per text, not classes. Pass --task regression"):
        CLASSES.check(["0.5", "1", "2"], "d.csv")
    with pytest.raises(ValueError, match="60 distinct numbers"):
        CLASSES.check([str(i) for i in range(60)], "d.csv")
    SCORES.check(["0.5"], "d.csv")


@pytest.mark.parametrize("spelling", [1, "1", " 1 ", "1.0", "1e0", 1.0, "+1"])
def test_an_integer_label_is_one_label_however_spelled(spelling):
    assert parse(CLASSES, spelling) == "1"


def test_labels_that_differ_only_in_case_are_refused():
    CLASSES.check(["pos", "neg", "pos"], "d.csv")
    with pytest.raises(ValueError, match="d.csv: the labels 'Pos', 'pos' differ only in letter case"):
        CLASSES.check(["pos", "Pos", "neg"], "d.csv")
