"""The published leaderboards (replace-not-append, compact per-sample records) and the
static site `arbench site` builds, checked in files and in a real browser (headless
Chromium through Playwright)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.errors import BenchError
from bench.results import (
    append_leaderboard,
    compact_samples_path,
    publish_leaderboard_row,
    read_leaderboard_rows,
    write_compact_samples,
)
from bench.site import PLOTS, build_site, draw_plot, page_name
from bench.tables import Table

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
EVIL = '<script>alert("x")</script>'


def run_row(run_id: str, model: str, accuracy: float, key: str = "k1",
            fingerprint: str = "m1", timestamp: str = "2026-01-01T00:00:00+00:00") -> dict:
    """A leaderboard row as Result.leaderboard_row() writes it (the columns that matter)."""
    return {"run_id": run_id, "timestamp": timestamp, "task": "digits", "model": model,
            "primary_metric": "accuracy", "accuracy": f"{accuracy:.6g}", "n_samples": 4,
            "comparability_key": key, "metrics": "accuracy",
            "primary_sample_key": "correct", "lower_is_better": "",
            "spec_hash": "s", "protocol_hash": "p" + key, "dataset_fingerprint": "d",
            "model_fingerprint": fingerprint, "model_ref": model, "git_commit": "c0ffee",
            "device": "cpu", "wall_s": 0.1, "samples_per_s": 40.0, "limit": "",
            "result_dir": f"results/digits/{model}/{run_id}"}


def samples_file(folder: Path, hits: list[int]) -> Path:
    """A run's samples.jsonl: per-sample correctness, a list value (left out of the
    compact copy) and a NaN."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "samples.jsonl"
    path.write_text("".join(json.dumps({"id": f"s{i}", "correct": h, "predicted": [h, 1 - h],
                                        "confidence": float("nan") if i == 0 else 0.5})
                            + "\n" for i, h in enumerate(hits)))
    return path


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- published leaderboards

def test_compact_samples_are_numbers_only_and_byte_stable(tmp_path: Path) -> None:
    jsonl = samples_file(tmp_path / "run", [1, 0, 1, 1])
    first = write_compact_samples(jsonl, tmp_path / "a.csv.gz")
    second = write_compact_samples(jsonl, tmp_path / "b.csv.gz")
    assert first.read_bytes() == second.read_bytes()
    text = gzip.decompress(first.read_bytes()).decode()
    assert text.splitlines() == ["id,correct,confidence", "s0,1,nan", "s1,0,0.5", "s2,1,0.5",
                                 "s3,1,0.5"]


def test_a_rerun_replaces_its_row_and_an_unchanged_one_changes_nothing(tmp_path: Path) -> None:
    board = tmp_path / "leaderboards" / "digits.csv"
    jsonl = samples_file(tmp_path / "run", [1, 0, 1, 1])
    publish_leaderboard_row(board, run_row("r1", "lenet5", 0.75), jsonl)
    publish_leaderboard_row(board, run_row("r2", "logreg", 0.5), jsonl)
    before = digest(board.parent)
    # Same measurement, new run id, time and commit: the published files stay as they are.
    again = dict(run_row("r3", "lenet5", 0.75), git_commit="beef", wall_s=0.2,
                 timestamp="2026-02-01T00:00:00+00:00")
    assert publish_leaderboard_row(board, again, jsonl) == "r1"
    assert digest(board.parent) == before
    # Another value (new weights): the row and its records are replaced, not appended.
    assert publish_leaderboard_row(board, run_row("r4", "lenet5", 1.0, fingerprint="m2"),
                                   jsonl) == "r4"
    _, rows = read_leaderboard_rows(board)
    assert [(r["run_id"], r["model"], r["accuracy"]) for r in rows] == [
        ("r2", "logreg", "0.5"), ("r4", "lenet5", "1")]
    assert sorted(p.name for p in (board.parent / "samples" / "digits").iterdir()) == [
        "r2.csv.gz", "r4.csv.gz"]
    # Another protocol is another row.
    publish_leaderboard_row(board, run_row("r5", "lenet5", 1.0, key="k2"), jsonl)
    assert len(read_leaderboard_rows(board)[1]) == 3


def test_a_kept_row_gets_its_missing_records_back(tmp_path: Path) -> None:
    board = tmp_path / "digits.csv"
    jsonl = samples_file(tmp_path / "run", [1, 1, 0, 1])
    publish_leaderboard_row(board, run_row("r1", "lenet5", 0.75), jsonl)
    records = compact_samples_path(tmp_path, "digits", "r1")
    records.unlink()
    assert publish_leaderboard_row(board, run_row("r2", "lenet5", 0.75), jsonl) == "r1"
    assert records.is_file()


def test_a_kept_row_gets_the_records_a_newer_arbench_writes(tmp_path: Path) -> None:
    """Same measurement, but the run now records a per-query value the published copy lacks
    (as retrieval's per-query AP did): the row stays, its records are refreshed."""
    board = tmp_path / "digits.csv"
    jsonl = samples_file(tmp_path / "run", [1, 1, 0, 1])
    publish_leaderboard_row(board, run_row("r1", "lenet5", 0.75), jsonl)
    richer = tmp_path / "richer.jsonl"
    richer.write_text("".join(json.dumps(dict(json.loads(line), AP=0.5)) + "\n" for line in
                              jsonl.read_text(encoding="utf-8").splitlines()), encoding="utf-8")
    assert publish_leaderboard_row(board, run_row("r2", "lenet5", 0.75), richer) == "r1"
    records = pd.read_csv(compact_samples_path(tmp_path, "digits", "r1"))
    assert list(records["AP"]) == [0.5] * 4
    assert [r["run_id"] for r in read_leaderboard_rows(board)[1]] == ["r1"]


# ---------------------------------------------------------------- the site, as files

def fixture_leaderboards(root: Path) -> Path:
    """Leaderboards of two shipped tasks in the on-disk format: digits with a reference,
    per-sample records, a second comparability group and a model named like a script;
    synthetic-depth with per-image AbsRel records (its error CDF)."""
    board = root / "leaderboards"
    rng = np.random.default_rng(0)
    for run_id, model, key, p in (("r0", "lenet5", "k2", 0.7), ("r1", "logreg", "k1", 0.6),
                                  ("r2", "lenet5", "k1", 0.9), ("r3", EVIL, "k1", 0.8)):
        hits = (rng.random(40) < p).astype(int).tolist()
        jsonl = samples_file(root / "results" / run_id, hits)
        row = run_row(run_id, model, float(np.mean(hits)), key=key,
                      timestamp=f"2026-01-01T00:00:0{run_id[1]}+00:00")
        row["n_samples"] = 40
        append_leaderboard(board / "digits.csv", row)
        write_compact_samples(jsonl, compact_samples_path(board, "digits", run_id))
    for run_id, model, scale in (("d1", "depth-unet", 0.1), ("d2", "constant-median", 0.5)):
        folder = root / "results" / run_id
        folder.mkdir(parents=True)
        errors = rng.random(20) * scale
        (folder / "samples.jsonl").write_text("".join(
            json.dumps({"id": f"i{i}", "abs_rel": e}) + "\n" for i, e in enumerate(errors)))
        append_leaderboard(board / "synthetic-depth.csv", dict(
            run_row(run_id, model, 0.0), task="synthetic-depth", primary_metric="abs_rel",
            metrics="abs_rel", abs_rel=f"{errors.mean():.6g}", lower_is_better="abs_rel",
            primary_sample_key="abs_rel"))
        write_compact_samples(folder / "samples.jsonl",
                              compact_samples_path(board, "synthetic-depth", run_id))
    return board


@pytest.fixture(scope="module")
def fixture_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fixture")
    board = fixture_leaderboards(root)
    shutil.rmtree(root / "results")  # a fresh clone: only the published records remain
    before = digest(board)
    index = build_site(board, root / "site")
    assert digest(board) == before, "the leaderboards folder is read-only to arbench site"
    return index.parent


def test_site_pages_escape_user_text_and_show_the_interval(fixture_site: Path) -> None:
    digits = (fixture_site / "tasks" / page_name("digits")).read_text()
    assert EVIL not in digits and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in digits
    assert digits.count('role="tab"') == 2 and "vs logreg (95% CI, N)" in digits
    assert "N=40" in digits
    model_page = fixture_site / "models" / page_name(EVIL)
    assert model_page.is_file() and model_page.parent == fixture_site / "models"
    assert EVIL not in model_page.read_text()
    index = (fixture_site / "index.html").read_text()
    assert "synthetic-depth" in index and "classification" in index
    assert list((fixture_site / "plots").glob("synthetic-depth-*.svg"))


def test_site_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    board = fixture_leaderboards(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(BenchError, match="was not written by `arbench site`"):
        build_site(board, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    build_site(board, tmp_path / "site")
    build_site(board, tmp_path / "site")  # its own folder is rebuilt
    with pytest.raises(BenchError, match="no leaderboard CSV"):
        build_site(tmp_path / "mine", tmp_path / "other")


def test_page_names_stay_in_their_folder() -> None:
    name = page_name("../../etc/passwd")
    assert "/" not in name and name.endswith(".html") and not name.startswith(".")
    assert page_name("a b") != page_name("a_b")


def plot_table(columns: list[str], values: dict[str, list[float]], samples_dir: Path,
               lower: set[str] = frozenset()) -> Table:
    rows = pd.DataFrame([{"model": m, "task": "t", "run_id": m, "result_dir": "",
                          **dict(zip(columns, v, strict=True))} for m, v in values.items()])
    return Table("t", columns, set(lower), rows, columns[0], samples_dir=samples_dir)


def write_records(samples_dir: Path, model: str, frame: pd.DataFrame) -> None:
    (samples_dir / "t").mkdir(parents=True, exist_ok=True)
    frame.to_csv(samples_dir / "t" / f"{model}.csv.gz", index=False)


@pytest.mark.parametrize(("family", "columns", "records"), [
    ("matching", ["mma@1px", "mma@3px"], None),
    ("matching", ["mma@1px"], {"id": ["i_a", "v_b"], "accuracy@1px": [0.5, 1.0],
                               "accuracy@3px": [0.75, 1.0]}),
    ("pose", ["adds_accuracy"], {"id": ["a", "b"], "add": [0.01, 0.2], "adds": [0.01, 0.05],
                                 "rotation_error": [2.0, float("inf")],
                                 "translation_error": [0.01, float("inf")]}),
    ("handpose", ["mpjpe_mm"], {"id": ["a", "b"], "error_mm": [5.0, 30.0]}),
    ("depth", ["abs_rel"], {"id": ["a", "b"], "abs_rel": [0.1, 0.3]}),
    ("retrieval", ["recall@1", "recall@5", "recall@10"], None),
    ("localization", ["recall@1", "recall@5", "median_error_m"], None),
    ("video", ["J&F-Mean"], {"id": ["bear", "car"], "J&F": [0.8, 0.6]}),
    ("shape", ["fscore@1%", "fscore@2%", "chamfer_l1"], None),
])
def test_each_family_draws_its_plot_byte_stably(tmp_path: Path, family: str,
                                               columns: list[str], records: dict | None) -> None:
    samples = tmp_path / "samples"
    table = plot_table(columns, {"a": [0.5] * len(columns), "b": [0.7] * len(columns)},
                       samples)
    if records is not None:
        for model in ("a", "b"):
            write_records(samples, model, pd.DataFrame(records))
    for number, drawer in enumerate(PLOTS[family]):
        assert draw_plot(drawer, table, tmp_path / f"{number}-one.svg")
        draw_plot(drawer, table, tmp_path / f"{number}-two.svg")
        one = (tmp_path / f"{number}-one.svg").read_bytes()
        assert one.startswith(b"<?xml") and one == (tmp_path / f"{number}-two.svg").read_bytes()
        assert b"<dc:date>" not in one


def test_a_plot_needing_records_is_left_out_without_them(tmp_path: Path) -> None:
    table = plot_table(["abs_rel"], {"a": [0.1]}, tmp_path / "samples")
    (drawer,) = PLOTS["depth"]
    assert draw_plot(drawer, table, tmp_path / "cdf.svg") is None
    assert not (tmp_path / "cdf.svg").exists()
    assert "classification" not in PLOTS


# ---------------------------------------------------------------- in a real browser

def _browser():
    if not CHROMIUM.exists():
        if os.geteuid() == 0:
            pytest.fail("chromium is missing: apt-get install -y chromium (.ci/run does)")
        pytest.skip("chromium is missing and we are not root: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    return sync_api.sync_playwright()


@pytest.fixture(scope="module")
def browser():
    with _browser() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site of the committed (embedded demo) leaderboards, built into a temp folder."""
    return build_site(REPO / "leaderboards", tmp_path_factory.mktemp("demo") / "site").parent


def open_page(browser, path: Path, site: Path):
    """Open ``path``; return (page, console errors, requests outside the site folder)."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    outside: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
    prefix = site.resolve().as_uri() + "/"
    page.on("request", lambda r: None if r.url.startswith((prefix, "data:"))
            else outside.append(r.url))
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    return page, errors, outside


def test_every_demo_page_loads_cleanly_with_its_family_plot(browser, demo_site: Path) -> None:
    pages = [demo_site / "index.html", *sorted((demo_site / "tasks").glob("*.html")),
             *sorted((demo_site / "models").glob("*.html"))]
    assert len(pages) > 3
    for path in pages:
        page, errors, outside = open_page(browser, path, demo_site)
        assert not errors, f"{path.name}: {errors}"
        assert not outside, f"{path.name} reached outside the site: {outside}"
        page.wait_for_function("Array.from(document.images).every(i => i.complete)")
        broken = page.evaluate("Array.from(document.images).filter("
                               "i => i.naturalWidth === 0).map(i => i.src)")
        assert not broken, f"{path.name}: images that do not load: {broken}"
        page.close()
    # Families whose plot is a curve over the leaderboard's own columns always have it.
    index = (demo_site / "index.html").read_text()
    for task, family in (("matching-homography", "matching"), ("synthetic-retrieval",
                         "retrieval"), ("synthetic-places", "localization"),
                         ("synthetic-shapes3d", "shape")):
        if task in index:
            page, _, _ = open_page(browser, demo_site / "tasks" / page_name(task), demo_site)
            assert page.locator(f'figure.plot[data-family="{family}"] img').count() == 1
            page.close()


def test_sorting_tabs_interval_and_escaping_in_the_browser(browser, fixture_site: Path,
                                                          tmp_path: Path) -> None:
    page, errors, outside = open_page(browser, fixture_site / "tasks" / page_name("digits"),
                                      fixture_site)
    group = page.locator("section.group:visible")
    models = group.locator("tbody td.model")
    assert models.all_inner_texts() == ["lenet5", EVIL, "logreg"]  # best first
    # The script-like model name is text on the page, and it ran nothing.
    assert page.evaluate("document.querySelectorAll('td.model script').length") == 0
    # Clicking the model header sorts by name, again reverses.
    header = group.locator("th", has_text="model")
    header.click()
    assert models.all_inner_texts() == sorted(["lenet5", EVIL, "logreg"], key=str.lower)
    header.click()
    assert models.all_inner_texts() == sorted(["lenet5", EVIL, "logreg"], key=str.lower,
                                              reverse=True)
    group.locator("th", has_text="accuracy ↑").click()
    values = [float(v) for v in group.locator("tbody td:nth-child(3)").all_inner_texts()]
    assert values == sorted(values)
    # The change against the reference carries its interval and N.
    change = group.locator("tr", has_text="lenet5").locator("td.change")
    assert "[" in change.inner_text() and "N=40" in change.inner_text()
    # The second comparability group is one click away.
    tabs = page.locator(".tab")
    assert tabs.count() == 2 and "1 run" in tabs.nth(1).inner_text()
    tabs.nth(1).click()
    assert page.locator("section.group:visible tbody td.model").all_inner_texts() == ["lenet5"]
    assert tabs.nth(1).get_attribute("aria-selected") == "true"
    # Provenance on demand.
    details = page.locator("section.group:visible details").first
    details.locator("summary").click()
    assert "model_fingerprint" in details.inner_text()
    page.screenshot(path=str(tmp_path / "digits.png"), full_page=True)
    assert (tmp_path / "digits.png").stat().st_size > 10_000
    assert not errors and not outside
    page.close()


# ---------------------------------------------------------------- the commands

def test_site_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench.cli import main

    board = fixture_leaderboards(tmp_path)
    assert main(["site", "--leaderboard-dir", str(board), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "index.html").is_file()
    assert main(["site", "--leaderboard-dir", str(tmp_path / "none"),
                 "--out", str(tmp_path / "out2")]) == 2
    assert "no leaderboard CSV in" in capsys.readouterr().err


def test_a_second_demo_leaves_the_published_files_unchanged(tmp_path: Path) -> None:
    from bench.demo import run_demo

    board, site = tmp_path / "leaderboards", tmp_path / "site"
    run_demo(["digits"], out_dir=tmp_path / "results", leaderboard_dir=board, site_dir=site)
    first = digest(board)
    assert len(read_leaderboard_rows(board / "digits.csv")[1]) == 4
    assert len(list((board / "samples" / "digits").glob("*.csv.gz"))) == 4
    run_demo(["digits"], out_dir=tmp_path / "results", leaderboard_dir=board, site_dir=site)
    assert digest(board) == first
    assert len(list((tmp_path / "results" / "digits").glob("*/*/result.json"))) == 8
    assert (site / "index.html").is_file()
