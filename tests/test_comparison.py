"""`msmmt compare` and multi-seed runs: the comparison table against the pooled scores, paired
differences, seed spreads, and refusal of runs on other samples, folds or unfinished."""

import zlib

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import yaml
from eval_fakes import (
    CLASSES,
    centroid_fit_predict,
    hashed_fit_predict,
    make_samples,
    write_manifest_dataset,
)
from typer.testing import CliRunner

from msmmt.cli import app
from msmmt.config import Config
from msmmt.engine.metrics import scores
from msmmt.evaluation.comparison import (
    ComparisonError,
    against_first,
    compare_runs,
    write_seed_summary,
)
from msmmt.evaluation.runner import FoldOutput, FoldsFailedError, run_folds

DATASETS = ("casme2", "samm", "smic")


def seeded_fit_predict(cfg, train, test, fold_dir):
    """Random probabilities that depend on the clip and on cfg.seed."""
    p = np.stack([
        np.random.default_rng(zlib.crc32(f"{cfg.seed}/{s.key}".encode())).dirichlet(np.ones(3))
        for s in test
    ])
    return FoldOutput(p)


def _uf1(frame: pd.DataFrame) -> float:
    idx = {c: i for i, c in enumerate(CLASSES)}
    return scores(frame["true"].map(idx).to_numpy(), frame["predicted"].map(idx).to_numpy(), 3)["uf1"]


def _pooled(run) -> pd.DataFrame:
    return pd.concat(pd.read_csv(p) for p in sorted((run / "folds").glob("*/predictions.csv")))


@pytest.fixture
def two_runs(tmp_path):
    samples = make_samples(n_subjects=9, clips=(4, 5, 6), datasets=DATASETS, noise=0.4)
    run_folds(Config(), samples, tmp_path / "centroid", centroid_fit_predict, progress=False)
    run_folds(Config(), samples, tmp_path / "random", hashed_fit_predict, progress=False)
    return tmp_path, samples


def test_table_and_paired_differences(two_runs):
    root, _ = two_runs
    c = compare_runs([root / "centroid", root / "random"], n_boot=300)
    table = c.table.set_index(["run", "part"])
    assert set(table.index) == {(r, p) for r in ("centroid", "random") for p in ("all", *DATASETS)}
    for run in ("centroid", "random"):
        pooled = _pooled(root / run)
        assert table.loc[(run, "all"), "uf1"] == pytest.approx(_uf1(pooled))
        smic = pooled[pooled["dataset"] == "smic"]
        assert table.loc[(run, "smic"), "uf1"] == pytest.approx(_uf1(smic))
        row = table.loc[(run, "all")]
        assert row["uf1_lo"] <= row["uf1"] <= row["uf1_hi"] and row["seeds"] == 1
    pairs = c.pairs.set_index("part")
    assert list(pairs.index) == ["all", *DATASETS]
    diff = table.loc[("centroid", "all"), "uf1"] - table.loc[("random", "all"), "uf1"]
    assert pairs.loc["all", "uf1_diff"] == pytest.approx(diff)
    assert pairs.loc["all", "lo"] <= pairs.loc["all", "uf1_diff"] <= pairs.loc["all", "hi"]
    # the centroid classifier is far better than chance here
    assert pairs.loc["all", "lo"] > 0 and pairs.loc["all", "p_a_better"] > 0.95


def test_differences_from_the_first_run_are_the_negated_pairs(two_runs):
    root, _ = two_runs
    c = compare_runs([root / "random", root / "centroid"], n_boot=300)
    pair = c.pairs.set_index("part")
    table = c.table.set_index(["run", "part"])
    for part in ("all", "smic"):
        pts = against_first(c, part).set_index("run")
        assert list(pts.index) == ["random", "centroid"]
        assert pts.loc["random", ["diff", "diff_lo", "diff_hi"]].tolist() == [0.0, 0.0, 0.0]
        # the pair is (random, centroid): random - centroid; the plot shows centroid - random
        assert pts.loc["centroid", "diff"] == pytest.approx(-pair.loc[part, "uf1_diff"])
        assert pts.loc["centroid", "diff_lo"] == pytest.approx(-pair.loc[part, "hi"])
        assert pts.loc["centroid", "diff_hi"] == pytest.approx(-pair.loc[part, "lo"])
        assert pts.loc["centroid", "diff"] == pytest.approx(
            table.loc[("centroid", part), "uf1"] - table.loc[("random", part), "uf1"])
        assert pts.loc["centroid", "uf1_lo"] == table.loc[("centroid", part), "uf1_lo"]
    assert against_first(c).loc[1, "diff_lo"] > 0  # centroid beats chance beyond the noise


def test_refuses_other_samples_other_folds_and_unfinished_runs(two_runs):
    root, samples = two_runs
    other = make_samples(n_subjects=9, clips=(4, 5, 6), datasets=DATASETS, noise=0.4, seed=5)
    run_folds(Config(), other, root / "other", hashed_fit_predict, progress=False)
    with pytest.raises(ComparisonError, match="different samples"):
        compare_runs([root / "centroid", root / "other"])
    kfold = Config.model_validate({"eval": {"protocol": "kfold", "k": 3}})
    run_folds(kfold, samples, root / "kfold", hashed_fit_predict, progress=False)
    with pytest.raises(ComparisonError, match="different folds"):
        compare_runs([root / "centroid", root / "kfold"])
    run_folds(Config(), samples, root / "partial", hashed_fit_predict, folds=["casme2_s00"],
              progress=False)
    with pytest.raises(ComparisonError, match="8 of 9 folds are not finished"):
        compare_runs([root / "centroid", root / "partial"])
    with pytest.raises(ComparisonError, match="not a run directory"):
        compare_runs([root / "centroid", root / "nothing"])
    with pytest.raises(ComparisonError, match="centroid is given twice"):
        compare_runs([root / "centroid", root / "random", root / "centroid"])


def test_seeds_are_summarised_as_mean_and_spread(tmp_path):
    samples = make_samples(n_subjects=8, datasets=DATASETS)
    for seed in (0, 1, 2):
        cfg = Config(seed=seed)
        run_folds(cfg, samples, tmp_path / "multi" / f"seed-{seed}", seeded_fit_predict, progress=False)
    seed_uf1 = [_uf1(_pooled(tmp_path / "multi" / f"seed-{s}")) for s in (0, 1, 2)]
    assert len(set(seed_uf1)) == 3  # the seeds differ
    c = compare_runs([tmp_path / "multi"], n_boot=200)
    row = c.table.set_index("part").loc["all"]
    assert row["seeds"] == 3
    assert row["uf1"] == pytest.approx(np.mean(seed_uf1))
    assert row["uf1_sd"] == pytest.approx(np.std(seed_uf1, ddof=1))
    assert (row["uf1_min"], row["uf1_max"]) == pytest.approx((min(seed_uf1), max(seed_uf1)))
    text = write_seed_summary(tmp_path / "multi", n_boot=200).read_text()
    assert "| multi | all | 3 |" in text and "sd " in text


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_loso_seeds_and_compare(tmp_path, monkeypatch):
    monkeypatch.setattr("msmmt.evaluation.fit_predict.train_and_predict", seeded_fit_predict)
    manifest = write_manifest_dataset(tmp_path, {"casme2/a": 3, "smic/b": 2, "samm/c": 3})
    r = _cli("loso", "--data", manifest, "--out", tmp_path / "runs", "--seeds", "0,1")
    assert r.exit_code == 0, r.output
    for seed in (0, 1):
        saved = yaml.safe_load((tmp_path / "runs" / f"seed-{seed}" / "config.yaml").read_text())
        assert saved["seed"] == seed
        assert (tmp_path / "runs" / f"seed-{seed}" / "report.md").is_file()
    assert (tmp_path / "runs" / "seeds.md").is_file()
    r = _cli("--seed", "3", "loso", "--data", manifest, "--out", tmp_path / "single")
    assert r.exit_code == 0, r.output
    r = _cli("compare", tmp_path / "runs", tmp_path / "single", "--out", tmp_path / "cmp")
    assert r.exit_code == 0, r.output
    assert "Paired differences" in r.output and "| runs | single | all |" in r.output
    assert len(pd.read_csv(tmp_path / "cmp" / "pairs.csv")) == 4  # all + 3 datasets
    picture = plt.imread(tmp_path / "cmp" / "comparison.png")
    assert picture.shape[1] == 1000 and picture.shape[0] == int(100 * (1.2 + 0.45 * 2))
    rep = _cli("report", tmp_path / "runs")
    assert rep.exit_code == 0 and "UF1 over seeds" in rep.output
    bad = _cli("loso", "--data", manifest, "--out", tmp_path / "x", "--seeds", "0,a")
    assert bad.exit_code == 2 and "expected comma-separated integers" in bad.output
    (tmp_path / "o").mkdir()
    other = write_manifest_dataset(tmp_path / "o", {"casme2/a": 2, "smic/b": 2})
    assert _cli("loso", "--data", other, "--out", tmp_path / "other").exit_code == 0
    refused = _cli("compare", tmp_path / "single", tmp_path / "other")
    assert refused.exit_code == 2 and "different samples" in refused.output
    assert "Traceback" not in refused.output


def test_cli_report_of_seeds_skips_a_seed_without_finished_folds(tmp_path):
    def broken(cfg, train, test, fold_dir):
        raise RuntimeError("nope")

    samples = make_samples(n_subjects=3)
    run_folds(Config(seed=0), samples, tmp_path / "seed-0", seeded_fit_predict, progress=False)
    with pytest.raises(FoldsFailedError):
        run_folds(Config(seed=1), samples, tmp_path / "seed-1", broken, progress=False)
    before = sorted(p.name for p in (tmp_path / "seed-1").iterdir())
    r = _cli("report", tmp_path)
    assert (tmp_path / "seed-0" / "report.md").is_file()
    assert sorted(p.name for p in (tmp_path / "seed-1").iterdir()) == before
    assert f"{tmp_path / 'seed-1'}: no fold is finished yet; no report written" in r.output
    assert r.exit_code == 2 and "folds are not finished" in r.output.splitlines()[-1]
    assert not (tmp_path / "seeds.md").exists()
    with pytest.raises(FoldsFailedError):
        run_folds(Config(seed=0), samples, tmp_path / "none" / "seed-0", broken, progress=False)
    r = _cli("report", tmp_path / "none")
    assert r.exit_code == 1
    assert r.output.splitlines()[-1] == f"error: {tmp_path / 'none'}: no fold of any seed is finished yet"


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        (",", "--seeds ',': expected comma-separated integers >= 0"),
        ("-1", "--seeds '-1': expected comma-separated integers >= 0"),
        ("0,1,0", "--seeds '0,1,0': seed 0 is given twice"),
    ],
)
def test_cli_bad_seeds_are_refused_before_any_run(tmp_path, seeds, message):
    manifest = write_manifest_dataset(tmp_path, {"casme2/a": 2, "smic/b": 2})
    r = _cli("loso", "--data", manifest, "--out", tmp_path / "runs", f"--seeds={seeds}")
    assert r.exit_code == 2 and r.output.startswith(f"error: {message}")
    assert not (tmp_path / "runs").exists()


def test_cli_seeds_are_not_nested_in_a_single_run(tmp_path):
    run_folds(Config(), make_samples(n_subjects=3), tmp_path / "single", centroid_fit_predict,
              progress=False)
    manifest = write_manifest_dataset(tmp_path, {"casme2/a": 2, "smic/b": 2})
    r = _cli("loso", "--data", manifest, "--out", tmp_path / "single", "--seeds", "0")
    assert r.exit_code == 2 and "already a single run" in r.output
    assert not (tmp_path / "single" / "seed-0").exists()
