"""Tests of gridgraph.evaluate: metrics (checked against scikit-learn), ensembles, CV, sampling."""
import math

import numpy as np
import pytest
import torch

from gridgraph.evaluate import (
    DLPFC_FOLDS,
    accuracy,
    binary_auroc,
    class_adjacency,
    classification_report,
    compare_models,
    compute_metrics,
    confusion_matrix,
    cv_splits,
    dataset_class_adjacency,
    ensemble,
    f1_score,
    format_comparison,
    macro_auroc,
    majority_vote,
    make_folds,
    mean_softmax,
    mean_std,
    metric_over_models,
    misclassification,
    nested_cv_splits,
    per_class_auroc,
    precision_recall_f1,
    sample_hyperparameters,
    select_hyperparameters,
    vote_counts,
)

skm = pytest.importorskip("sklearn.metrics")


def _softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _random_problem(rng, n, k, tied=False):
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    if tied:  # few distinct values -> many ties
        logits = np.round(logits)
    return y, _softmax(logits)


# ----------------------------------------------------------------------------- accuracy / confusion
def test_accuracy_and_confusion_hand_computed():
    y_true = np.array([0, 0, 1, 1, 2, -1, 2])
    y_pred = np.array([0, 1, 1, 1, 0, 2, 2])
    assert accuracy(y_true, y_pred) == pytest.approx(4 / 6)
    cm = confusion_matrix(y_true, y_pred, num_classes=4)
    expected = np.array([[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(cm, expected)
    assert cm.dtype == np.int64
    norm = confusion_matrix(y_true, y_pred, num_classes=4, normalize=True)
    np.testing.assert_allclose(norm[:3], [[0.5, 0.5, 0, 0], [0, 1, 0, 0], [0.5, 0, 0.5, 0]])
    np.testing.assert_array_equal(norm[3], 0.0)  # empty row stays zero, not NaN
    assert not np.isnan(norm).any()


def test_accuracy_from_probabilities_and_torch():
    y = torch.tensor([1, 0, -1, 1])
    p = torch.tensor([[0.2, 0.8], [0.9, 0.1], [0.5, 0.5], [0.7, 0.3]])
    assert accuracy(y, p) == pytest.approx(2 / 3)
    np.testing.assert_array_equal(confusion_matrix(y, p), [[1, 0], [1, 1]])


def test_accuracy_without_labels_is_nan():
    assert math.isnan(accuracy(np.array([-1, -1]), np.array([0, 1])))


# ----------------------------------------------------------------------------- AUROC
def test_binary_auroc_hand_computed_with_ties():
    # positives 0.8, 0.4; negatives 0.4, 0.1
    # pairs: 0.8>0.4, 0.8>0.1, 0.4=0.4 (counts 1/2), 0.4>0.1
    assert binary_auroc([1, 1, 0, 0], [0.8, 0.4, 0.4, 0.1]) == pytest.approx(3.5 / 4)
    assert math.isnan(binary_auroc([1, 1], [0.3, 0.2]))


@pytest.mark.parametrize("tied", [False, True])
def test_auroc_two_classes_matches_sklearn(tied):
    rng = np.random.default_rng(0)
    y, p = _random_problem(rng, 300, 2, tied)
    y[:20] = -1
    keep = y >= 0
    ref = skm.roc_auc_score(y[keep], p[keep, 1])
    assert macro_auroc(y, p) == pytest.approx(ref, abs=1e-12)
    per = per_class_auroc(y, p)
    np.testing.assert_allclose(per, [ref, ref], atol=1e-12)
    # (N,) score of class 1 is also accepted
    assert macro_auroc(y, p[:, 1]) == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("tied", [False, True])
def test_auroc_multiclass_matches_sklearn(tied):
    rng = np.random.default_rng(1)
    y, p = _random_problem(rng, 400, 4, tied)
    ref = skm.roc_auc_score(y, p, multi_class="ovr", average="macro")
    assert macro_auroc(y, p) == pytest.approx(ref, abs=1e-12)
    ref_per = skm.roc_auc_score(y, p, multi_class="ovr", average=None)
    np.testing.assert_allclose(per_class_auroc(torch.from_numpy(y), torch.from_numpy(p)), ref_per,
                               atol=1e-12)


@pytest.mark.parametrize("tied", [False, True])
def test_auroc_absent_class_matches_sklearn_on_defined_classes(tied):
    rng = np.random.default_rng(2)
    y, p = _random_problem(rng, 300, 4, tied)
    y[y == 2] = 0  # class 2 absent from the split
    y[:7] = -1
    per = per_class_auroc(y, p)
    assert math.isnan(per[2])
    keep = y >= 0
    refs = [skm.roc_auc_score(y[keep] == c, p[keep, c]) for c in (0, 1, 3)]
    np.testing.assert_allclose(per[[0, 1, 3]], refs, atol=1e-12)
    assert macro_auroc(y, p) == pytest.approx(np.mean(refs), abs=1e-12)


def test_auroc_single_class_present_is_nan():
    y = np.array([1, 1, 1, -1])
    p = _softmax(np.random.default_rng(0).normal(size=(4, 3)))
    assert np.isnan(per_class_auroc(y, p)).all()
    assert math.isnan(macro_auroc(y, p))


# ----------------------------------------------------------------------------- F1
def test_f1_matches_sklearn():
    rng = np.random.default_rng(3)
    y, p = _random_problem(rng, 500, 5)
    pred = p.argmax(1)
    y_m = y.copy()
    y_m[:30] = -1
    keep = y_m >= 0
    assert f1_score(y_m, pred, "weighted") == pytest.approx(
        skm.f1_score(y[keep], pred[keep], average="weighted"), abs=1e-12)
    assert f1_score(y_m, pred, "macro") == pytest.approx(
        skm.f1_score(y[keep], pred[keep], average="macro"), abs=1e-12)
    np.testing.assert_allclose(f1_score(y_m, p, None),
                               skm.f1_score(y[keep], pred[keep], average=None), atol=1e-12)


def test_f1_with_missing_predicted_class_matches_sklearn():
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    pred = np.array([0, 0, 0, 0, 2, 2, 0])  # class 1 never predicted
    for avg in ("weighted", "macro"):
        ref = skm.f1_score(y, pred, average=avg, zero_division=0)
        assert f1_score(y, pred, avg) == pytest.approx(ref, abs=1e-12)
    prec, rec, f1, sup = precision_recall_f1(y, pred)
    np.testing.assert_allclose(prec, [0.4, 0.0, 1.0])
    np.testing.assert_allclose(rec, [1.0, 0.0, 2 / 3])
    np.testing.assert_array_equal(sup, [2, 2, 3])


# ----------------------------------------------------------------------------- summaries
def test_classification_report_and_comparison():
    rng = np.random.default_rng(4)
    y, p = _random_problem(rng, 200, 3)
    rep = classification_report(y, p, ["a", "b", "c"], output_dict=True)
    assert set(rep["per_class"]) == {"a", "b", "c"}
    assert rep["accuracy"] == pytest.approx(skm.accuracy_score(y, p.argmax(1)))
    assert rep["per_class"]["b"]["support"] == int((y == 1).sum())
    assert rep["num_labeled"] == 200
    text = classification_report(y, p, ["a", "b", "c"])
    assert "macro_auroc" in text and "weighted_f1" in text
    res = compare_models(y, {"f": p, "f+g": _softmax(np.log(p) * 3)})
    assert set(res) == {"f", "f+g"} and set(res["f"]) >= {"accuracy", "macro_auroc"}
    assert "f+g" in format_comparison(res)
    hard = compute_metrics(y, p.argmax(1))
    assert math.isnan(hard["macro_auroc"])


def test_misclassification_density():
    y = np.array([0, 1, -1])
    p = np.array([[0.9, 0.1], [0.7, 0.3], [0.5, 0.5]])
    d = misclassification(y, p)
    np.testing.assert_allclose(d[:2], [0.1, 0.7])
    assert math.isnan(d[2])


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call",
    [
        lambda: accuracy(np.array([0, 1, 1]), np.array([0, 1])),
        lambda: per_class_auroc(np.array([0, 1, 1]), np.ones((2, 2))),
        lambda: per_class_auroc(np.array([0, 1]), np.ones((2, 2, 2))),
        lambda: per_class_auroc(np.array([0, 3]), np.full((2, 2), 0.5)),
        lambda: macro_auroc(np.array([0, 1]), np.array([[0.5, np.nan], [0.1, 0.9]])),
        lambda: confusion_matrix(np.array([0, 1]), np.array([0, 5]), num_classes=3),
        lambda: confusion_matrix(np.array([0, 1]), np.ones((2, 3)), num_classes=4),
        lambda: accuracy(np.array([[0, 1]]), np.array([0, 1])),
        lambda: accuracy(np.array([0, -2]), np.array([0, 1])),
        lambda: f1_score(np.array([0, 1]), np.array([0, 1]), average="micro"),
        lambda: misclassification(np.array([0, 1]), np.ones((3, 2))),
        lambda: class_adjacency(np.array([0, 1]), np.array([[0, 1, 2]])),
        lambda: class_adjacency(np.array([0, 1]), np.array([[0], [2]])),
    ],
)
def test_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_error_message_names_the_mismatch():
    with pytest.raises(ValueError, match="3 labels"):
        per_class_auroc(np.array([0, 1, 1]), np.ones((2, 2)))


# ----------------------------------------------------------------------------- class adjacency
def test_class_adjacency_exact_counts():
    # path 0-1-2-3 plus edge 0-2, labels a a b -1 ; stored in both directions
    labels = np.array([0, 0, 1, -1])
    und = [(0, 1), (1, 2), (2, 3), (0, 2)]
    src, dst = [u for u, _ in und], [v for _, v in und]
    ei = np.array([src + dst, dst + src])
    a = class_adjacency(labels, torch.from_numpy(ei), num_classes=3)
    # 0-1 (a,a): +2 on [0,0]; 1-2 (a,b) and 0-2 (a,b): [0,1] += 2, [1,0] += 2; 2-3 unlabeled: none
    np.testing.assert_array_equal(a, [[2, 2, 0], [2, 0, 0], [0, 0, 0]])
    np.testing.assert_allclose(class_adjacency(labels, ei, 3, normalize="row"),
                               [[0.5, 0.5, 0], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_allclose(class_adjacency(labels, ei, 3, normalize="all").sum(), 1.0)

    class _G:
        edge_index = ei

    class _S:
        def __init__(self):
            self.labels, self.graph, self.classes = labels, _G(), ["a", "b", "c"]

    np.testing.assert_array_equal(dataset_class_adjacency([_S(), _S()]), 2 * a)


# ----------------------------------------------------------------------------- ensembles
def test_majority_vote_with_tie_broken_by_mean_probability():
    p1 = np.array([[0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.1, 0.2, 0.7]])
    p2 = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.4, 0.3]])
    p3 = np.array([[0.1, 0.8, 0.1], [0.35, 0.3, 0.35], [0.2, 0.2, 0.6]])
    # votes per node: (0, 0, 1) -> 0; (0, 1, 0) -> 0 (p3 ties 0 and 2, argmax takes 0);
    # (2, 1, 2) -> 2
    np.testing.assert_array_equal(majority_vote([p1, p2, p3]), [0, 0, 2])
    # a real tie: two models, one vote each -> higher mean probability wins
    q1 = np.array([[0.6, 0.4], [0.55, 0.45]])
    q2 = np.array([[0.1, 0.9], [0.49, 0.51]])
    # node 0: mean [0.35, 0.65] -> 1; node 1: mean [0.52, 0.48] -> 0
    np.testing.assert_array_equal(majority_vote(np.stack([q1, q2])), [1, 0])
    # class ids only: tie goes to the lowest class id, unless probs are given
    ids = np.array([[1, 0], [0, 1]])
    np.testing.assert_array_equal(majority_vote(ids), [0, 0])
    np.testing.assert_array_equal(majority_vote(ids, probs=[q2, q1]), [1, 0])
    np.testing.assert_array_equal(vote_counts(ids, 3), [[1, 1, 0], [1, 1, 0]])


def test_mean_softmax_and_ensemble():
    q1 = torch.tensor([[0.6, 0.4], [0.55, 0.45]])
    q2 = torch.tensor([[0.1, 0.9], [0.49, 0.51]])
    np.testing.assert_allclose(mean_softmax([q1, q2]), [[0.35, 0.65], [0.52, 0.48]])
    logits = np.log(np.stack([q1.numpy(), q2.numpy()]))
    np.testing.assert_allclose(mean_softmax(logits, from_logits=True), [[0.35, 0.65], [0.52, 0.48]],
                               rtol=1e-6)
    labels, scores = ensemble([q1, q2], "mean")
    np.testing.assert_array_equal(labels, [1, 0])
    labels, scores = ensemble([q1, q2], "vote")
    np.testing.assert_array_equal(labels, [1, 0])
    np.testing.assert_allclose(scores, [[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ValueError, match="same"):
        mean_softmax([np.ones((2, 2)), np.ones((3, 2))])
    with pytest.raises(ValueError):
        mean_softmax([])
    with pytest.raises(ValueError):
        ensemble([q1], "median")


def test_mean_std_over_models():
    y = np.array([0, 1, 1, 0])
    preds = [np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]), np.array([1, 0, 0, 0])]
    probs = [np.eye(2)[p] for p in preds]
    s = metric_over_models(accuracy, y, probs)
    np.testing.assert_allclose(s.values, [1.0, 0.75, 0.25])
    assert s.mean == pytest.approx(2 / 3)
    assert s.std == pytest.approx(np.std([1.0, 0.75, 0.25], ddof=1))
    assert math.isnan(mean_std([0.5]).std)
    assert mean_std([0.5], ddof=0).std == 0.0


# ----------------------------------------------------------------------------- hyperparameters
def test_hyperparameter_sampler_ranges_and_determinism():
    a = sample_hyperparameters(200, seed=7)
    lr = np.array([c["lr"] for c in a])
    alpha = np.array([c["alpha"] for c in a])
    assert ((lr >= 1e-4) & (lr <= 1e-3)).all()
    assert ((alpha >= 0) & (alpha <= 0.1)).all()
    # log-uniform: log10(lr) spread over (-4, -3), roughly half below -3.5
    assert 0.35 < np.mean(np.log10(lr) < -3.5) < 0.65
    assert sample_hyperparameters(200, seed=7) == a
    assert sample_hyperparameters(5, seed=7) == a[:5]  # prefix-stable
    assert sample_hyperparameters(5, seed=8) != a[:5]
    gen = sample_hyperparameters(3, seed=np.random.default_rng(7))
    assert gen == a[:3]
    space = {"k": ("int_uniform", 1, 3), "g": ("choice", ["gcn", "hexconv"])}
    c = sample_hyperparameters(50, seed=0, space=space)
    assert {x["k"] for x in c} <= {1, 2, 3} and {x["g"] for x in c} <= {"gcn", "hexconv"}
    with pytest.raises(ValueError):
        sample_hyperparameters(2, space={"x": ("normal", 0, 1)})
    with pytest.raises(ValueError):
        sample_hyperparameters(2, space={"x": ("uniform", 1, 0)})


# ----------------------------------------------------------------------------- cross-validation
ALL_DLPFC = [s for fold in DLPFC_FOLDS for s in fold]


def test_cv_splits_cover_each_section_once_without_leaks():
    splits = cv_splits(DLPFC_FOLDS, sections=ALL_DLPFC)
    assert len(splits) == 6
    tested = [s for sp in splits for s in sp.test]
    assert sorted(tested) == sorted(ALL_DLPFC)  # each exactly once
    for (train, test), fold in zip(splits, DLPFC_FOLDS):
        assert list(fold) == test
        assert not set(train) & set(test)
        assert sorted(train + test) == sorted(ALL_DLPFC)
    assert splits[0].test == ["151507", "151508"]


def test_nested_cv_inner_folds_never_see_outer_test():
    nested = nested_cv_splits(DLPFC_FOLDS)
    assert len(nested) == 6
    for outer in nested:
        assert len(outer.inner) == 5
        held = set(outer.test)
        inner_tested = []
        for inner in outer.inner:
            assert not held & set(inner.train) and not held & set(inner.test)
            assert not set(inner.train) & set(inner.test)
            assert sorted(inner.train + inner.test) == sorted(outer.train)
            inner_tested += inner.test
        assert sorted(inner_tested) == sorted(outer.train)


def test_cv_validation():
    with pytest.raises(ValueError, match="appears in fold"):
        cv_splits([["a", "b"], ["b", "c"]])
    with pytest.raises(ValueError, match="at least 2 folds"):
        cv_splits([["a", "b"]])
    with pytest.raises(ValueError, match="not in any fold"):
        cv_splits([["a"], ["b"]], sections=["a", "b", "c"])
    with pytest.raises(ValueError, match="unknown"):
        cv_splits([["a"], ["b"]], sections=["a"])
    with pytest.raises(ValueError, match="at least 3 folds"):
        nested_cv_splits([["a"], ["b"]])
    with pytest.raises(ValueError):
        cv_splits("ab")


def test_make_folds_and_selection():
    folds = make_folds(ALL_DLPFC, 6)
    assert [tuple(f) for f in folds] == list(DLPFC_FOLDS)
    shuffled = make_folds(ALL_DLPFC, 4, shuffle=True, seed=1)
    assert sorted(s for f in shuffled for s in f) == sorted(ALL_DLPFC)
    assert [len(f) for f in shuffled] == [3, 3, 3, 3]
    outer = nested_cv_splits(DLPFC_FOLDS)[0]
    cands = [{"lr": 1e-4}, {"lr": 5e-4}, {"lr": 1e-3}]
    seen = []

    def score(c, split):
        seen.append(split)
        return -abs(np.log10(c["lr"]) + 3.3)

    best, scores = select_hyperparameters(cands, score, outer.inner)
    assert best == 1 and scores.shape == (3, 5)
    assert all(not set(s.train + s.test) & set(outer.test) for s in seen)
    best_loss, _ = select_hyperparameters(cands, score, outer.inner, greater_is_better=False)
    assert best_loss == 0
