"""`resfam-cards bench`: CPU inference throughput timed for the models named, written to a benchmark file
with the machine, versions, date and a hash of the zoo's code; the overview shows it as measured on that
machine and date, and as stale once the code has changed. Nothing here asserts a speed: only that
the figures are what the file and the page say they are."""
from __future__ import annotations

import json

import pytest

from resfam.cards.bench import check_output, read_benchmark, zoo_code_hash
from resfam.cards.catalog import model_catalog
from resfam.cards.cli import main
from resfam.cards.findings import CardError
from resfam.cards.pages import overview_page


@pytest.fixture(scope="module")
def benchmark_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "benchmark.json"
    assert main(["bench", "resnet18", "--batch", "2", "--runs", "1", "--threads", "1", "--output", str(path),
                 "-q"]) == 0
    return path


def test_the_file_says_what_was_measured_where_and_when(benchmark_file):
    data = json.loads(benchmark_file.read_text(encoding="utf-8"))
    assert data["format"] == 1 and data["threads"] == 1 and data["batch"] == 2 and data["runs"] == 1
    assert data["code"] == zoo_code_hash()
    assert data["machine"]["cores"] >= 1 and data["machine"]["cpu"]
    assert data["versions"]["torch"].startswith("2.13.0") and data["date"].endswith("UTC")
    model = data["models"]["resnet18"]
    assert model["image_size"] == 224 and set(model["images_per_second"]) == {"1", "2"}
    assert all(speed > 0 for speed in model["images_per_second"].values())


def test_the_overview_shows_the_file_as_measured_and_marks_old_code_stale(benchmark_file, tmp_path):
    benchmark = read_benchmark(benchmark_file)
    assert not benchmark.stale
    data = benchmark.data
    page = overview_page(model_catalog([]), src_uri="models/index.md", urls={}, benchmark=benchmark)
    assert f"measured on {data['machine']['cpu']} ({data['machine']['cores']} cores" in page
    assert data["date"] in page and "not verified" in page and "Stale" not in page
    speeds = data["models"]["resnet18"]["images_per_second"]
    assert f"| resnet18 | 224 | {speeds['1']:.2f} | {speeds['2']:.2f} |" in page

    old = tmp_path / "old.json"
    old.write_text(json.dumps({**data, "code": "0" * 64}), encoding="utf-8")
    stale = read_benchmark(old)
    assert stale.stale
    assert '!!! warning "Stale: measured on older code"' in overview_page([], src_uri="models/index.md", urls={},
                                                                         benchmark=stale)


@pytest.mark.parametrize("where", ["a-folder", "missing/benchmark.json", "benchmark.txt"])
def test_a_wrong_output_path_is_refused_before_timing(tmp_path, capsys, where):
    (tmp_path / "a-folder").mkdir()
    assert main(["bench", "resnet18", "--output", str(tmp_path / where), "-q"]) == 2
    assert "the benchmark file" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a-folder"]


def test_an_unknown_model_and_a_damaged_file_are_named(tmp_path, capsys):
    assert main(["bench", "resnet5O", "--output", str(tmp_path / "b.json"), "-q"]) == 2
    assert "unknown model ID 'resnet5O'" in capsys.readouterr().err and not (tmp_path / "b.json").exists()
    damaged = tmp_path / "damaged.json"
    damaged.write_text('{"format": 1, "models": []}', encoding="utf-8")
    with pytest.raises(CardError) as raised:
        read_benchmark(damaged)
    assert "not a resfam benchmark file" in str(raised.value.findings[0].format())


def test_a_file_bench_did_not_write_is_never_replaced(tmp_path, capsys, monkeypatch, benchmark_file):
    """Another JSON file, or any file in the project's docs/, is left byte for byte; an earlier benchmark
    file may be replaced (checked by its own reader)."""
    foreign = tmp_path / "other.json"
    foreign.write_text('{"a": 1}\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    schema = tmp_path / "docs" / "models.schema.json"
    schema.write_text("{}\n", encoding="utf-8")
    for target, said in ((foreign, "resfam-cards bench did not write"), (schema, "project's source folder docs/")):
        assert main(["bench", "resnet18", "--output", str(target), "-q"]) == 2
        assert said in capsys.readouterr().err and target.read_bytes() in (b'{"a": 1}\n', b"{}\n")
    check_output(benchmark_file)  # an earlier benchmark file: may be replaced
