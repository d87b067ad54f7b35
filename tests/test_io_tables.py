"""The text-table layer under the classic readers (pyarrow parser, gridgraph's errors)."""
import gzip

import numpy as np
import pytest

from gridgraph.io.tables import read_table
from gridgraph.io.writers.tables import read_predictions, round_significant, write_loupe_csv, write_predictions


def write(path, text: str):
    path.write_bytes(text.encode())
    return path


def test_values_lines_and_blank_rows(tmp_path):
    path = write(tmp_path / "t.csv", "id,x,name\n a ,1.5, b\n\n  \n,,\nc,2,d e\n")
    table = read_table(path, header=True)
    assert table.columns == ["id", "x", "name"] and len(table) == 2
    assert table.text("id") == ["a", "c"] and table.text("name") == ["b", "d e"]
    assert table.lines == [2, 6]  # blank, white and empty-field lines are skipped but counted
    assert table.numeric("x").tolist() == [1.5, 2.0]
    assert table.row(1) == ["c", "2", "d e"]


def test_gzip_equals_plain(tmp_path):
    text = "x\ty\tlabel\n1\t2\ta\n3\t4\t\n"
    plain = read_table(write(tmp_path / "t.tsv", text), header=True)
    packed = tmp_path / "t.tsv.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    zipped = read_table(packed, header=True)
    assert zipped.values == plain.values == [["1", "3"], ["2", "4"], ["a", ""]]
    assert zipped.lines == plain.lines == [2, 3]


def test_quoted_delimiters_and_row_names_header(tmp_path):
    table = read_table(write(tmp_path / "q.csv", 'k,v\n"a,b",1\n"say ""hi""",2\n'), header=True)
    assert table.text("k") == ["a,b", 'say "hi"']
    r = read_table(write(tmp_path / "r.tsv", "g1\tg2\nA\t1\t2\nB\t3\t4\n"), header=True, row_names=True)
    assert r.columns == ["", "g1", "g2"] and r.text(0) == ["A", "B"] and r.numeric("g2").tolist() == [2, 4]


@pytest.mark.parametrize("text, needles", [
    ("a,b\n1,2\n3\n4,5\n", ["line 3 has 1 fields", "expected 2"]),
    ("a,b\n1,2\n3,4,5\n", ["line 3 has 3 fields", "expected 2"]),
    ("a,b\n1,2\n\n3,4\n5", ["line 5 has 1 fields", "truncated"]),
    ("a,b\n1,x\n", ["column 'b'", "line 2", "expected a number", "got text that is not one"]),
])
def test_bad_rows_name_the_line(tmp_path, text, needles):
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(ValueError) as info:
        read_table(path, header=True).numeric("b")
    for needle in [str(path), *needles]:
        assert needle in str(info.value)


def test_binary_and_empty_files(tmp_path):
    with pytest.raises(ValueError, match=r"not a text file.*line 3 holds NUL"):
        read_table(write(tmp_path / "n.csv", "a,b\n1,2\n3,\x00\n"), header=True)
    latin = tmp_path / "l.csv"
    latin.write_bytes("a,b\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        read_table(latin, header=True)
    with pytest.raises(ValueError, match="is empty"):
        read_table(write(tmp_path / "e.csv", "\n\n"), header=True)
    fake = tmp_path / "f.csv.gz"
    fake.write_bytes(b"plain text, not gzip\n")
    with pytest.raises(ValueError, match="not a text file"):
        read_table(fake)


def test_round_significant_matches_format():
    values = np.array([0.123456789, 1.5e-7, 98765.4321, 0.0, -2.0 / 3.0, 1.0])
    got = [repr(float(v)) for v in round_significant(values, 4)]
    assert got == [repr(float(format(v, ".4g"))) for v in values]  # the same shortest decimals


def test_writers_quote_only_when_needed_and_round_trip(tmp_path):
    plain = write_loupe_csv(tmp_path / "l.csv", ["A-1", "B-1", "C-1"], ["x", None, "y"])
    assert plain.read_text() == "Barcode,Annotation\nA-1,x\nC-1,y\n"
    quoted = write_loupe_csv(tmp_path / "q.csv", ["A,1"], ["x"])
    assert read_table(quoted, header=True).text("Barcode") == ["A,1"]
    probs = np.array([[0.25, 0.75], [1 / 3, 2 / 3]])
    path = write_predictions(tmp_path / "p.tsv", ["a", "b"], [1, -1], probs, ["u", "v"], precision=3)
    assert path.read_text().splitlines() == ["id\tlabel\tu\tv", "a\tv\t0.25\t0.75", "b\t\t0.333\t0.667"]
    ids, names, got, classes = read_predictions(path)
    assert ids == ["a", "b"] and names == ["v", None] and classes == ["u", "v"]
    np.testing.assert_allclose(got, probs, atol=5e-4)
