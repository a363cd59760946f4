"""Estimating class shares of a collection from the model's probabilities (quantification), corrected with a
calibration set: held-out faces with their true labels and the model's probabilities for them.

Methods (the literature's names; Forman 2008, Bella et al. 2010, Saerens et al. 2002, Alexandari et al. 2020):
    cc        classify and count: the share of faces whose most probable class it is (what `run` counts)
    pcc       probabilistic classify and count: the mean probability
    acc       adjusted classify and count: solves counted = confusion @ shares, the confusion (P(predicted
              class | true class)) measured on the calibration set; least squares on the simplex
    pacc      acc with the mean probability vectors per true class instead of the hard confusion
    emq       EM prior correction (Saerens, Latinne, Decaestecker): re-weights each face's probabilities by
              new prior / calibration prior until the shares are a fixed point; priors: the calibration
              set's label shares
    emq_bcts  emq after bias-corrected temperature scaling (Alexandari et al.): a temperature and one bias
              per class, fitted on the calibration set (maximum likelihood, Newton's method), make the
              probabilities calibrated for the calibration set's mix, whose mean is then EM's prior

Defaults (DEFAULT_METHODS): emq_bcts for race, acc for gender, the age groups counted (cc). Chosen on FairFace's
validation part split in halves (each half the calibration of the other), on issue 37's collections and issue
24's skewed ones (benchmarks/audit.py --halves; docs/report.md): emq_bcts has the smallest race error (mean 4.8,
worst collection 8.8 points, pacc 7.0 and 15.5), acc the smallest worst gender error (unstratified 3.3, by race
4.0), and no correction beat counting on the nine age groups (mean 38 to 40 points against 24: inverting a
confusion of nine neighbouring groups amplifies any difference between a collection's faces and the calibration
set's); their intervals also span other corrections (reporting.correction), right where these are not.

Interval: a percentile bootstrap resampling the calibration set and the collection together, refitting the
method each time (collections beyond `max_faces` resampled from a uniform sample of that many, which can only
widen it), then widened by ALLOWANCES for what no resampling sees: faces that differ from the calibration set's
beyond the shares (every method's assumption). Not in it: calibration labels' errors, faces the detector misses.

Shares within groups of another attribute (`--by`), and report's strata (race by life stage):
the method runs on the joint classes, each face's joint probabilities the product of the heads', the share of
a class within a group joint / group share (per replicate too), which corrects the grouping attribute's errors
as well; acc and pacc draw a thinly calibrated joint class's errors toward the product of each attribute's
(JOINT_SMOOTHING)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METHODS = ("cc", "pcc", "acc", "pacc", "emq", "emq_bcts")
# the method of each attribute unless one is asked for (the module doc says why)
DEFAULT_METHODS = {"race": "emq_bcts", "gender": "acc", "age_group": "cc"}
# each side's widening of an attribute's intervals (default method): the smallest making them hold 95 % of the classes
# of benchmarks/audit.py's collections of FairFace's validation halves, sized for a calibration set twice as large
ALLOWANCES = {"race": 0.006, "gender": 0.011, "age_group": 0.063}
FLOOR, SMOOTHING = 1e-6, 0.5  # probabilities clipped to FLOOR before logs and EM; pseudo-counts per class
# acc/pacc on joint classes: pseudo-faces per joint class drawing its column toward the product of the
# attributes' own columns (their errors as if independent), so thin cells (elders of one race group) do not
# swing the estimate; chosen on FairFace's validation part (benchmarks/audit.py)
JOINT_SMOOTHING = 10.0
# EM's replicates resample at most this many faces of a collection (EM's cost; it can only widen the interval)
EM_BOOTSTRAP_FACES = 10_000


def _clip(probs: np.ndarray) -> np.ndarray:
    probs = np.clip(np.asarray(probs, np.float64), FLOOR, None)
    return probs / probs.sum(1, keepdims=True)


def counted(probs: np.ndarray, weights=None) -> np.ndarray:
    """Shares of the most probable class (classify and count; weights: each face's, default 1)."""
    found = np.bincount(np.asarray(probs).argmax(1), weights, minlength=np.shape(probs)[1])
    return found / max(found.sum(), 1e-12)


def project_simplex(v: np.ndarray) -> np.ndarray:
    """The nearest point of the probability simplex (Euclidean projection; Duchi et al. 2008)."""
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u) - 1
    rho = np.nonzero(u - cumulative / np.arange(1, len(v) + 1) > 0)[0][-1]
    return np.maximum(v - cumulative[rho] / (rho + 1), 0)


def simplex_least_squares(matrix: np.ndarray, target: np.ndarray, iterations: int = 500) -> np.ndarray:
    """argmin ||matrix @ p - target|| over the simplex (accelerated projected gradient)."""
    step = 1 / max(np.linalg.norm(matrix, 2) ** 2, 1e-12)
    p = y = project_simplex(np.linalg.lstsq(matrix, target, rcond=None)[0])
    t = 1.0
    for _ in range(iterations):
        following = project_simplex(y - step * matrix.T @ (matrix @ y - target))
        t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
        y = following + (t - 1) / t_next * (following - p)
        if np.abs(following - p).max() < 1e-9:
            return following
        p, t = following, t_next
    return p


def em_priors(probs: np.ndarray, source_prior: np.ndarray, tolerance: float = 1e-6,
              iterations: int = 1000, weights=None) -> np.ndarray:
    """Saerens-Latinne-Decaestecker EM: the class shares of `probs` (posteriors under `source_prior`)."""
    prior = source_prior.copy()
    for _ in range(iterations):
        weighted = probs * (prior / source_prior)
        new = np.average(weighted / weighted.sum(1, keepdims=True), axis=0, weights=weights)
        if np.abs(new - prior).max() < tolerance:
            return new
        prior = new
    return prior


def bcts_features(probs: list[np.ndarray]) -> np.ndarray:
    """(n, K, D) features of each (joint) class's logit: per attribute its log probability of the class, with
    a temperature of its own for each class of the other attribute, and a bias per (joint) class."""
    logs = [np.log(_clip(p)) for p in probs]
    n = len(logs[0])
    if len(logs) == 1:
        k = logs[0].shape[1]
        return np.concatenate([logs[0][:, :, None], np.broadcast_to(np.eye(k), (n, k, k))], axis=2)
    (k1, k2), (l1, l2) = (l.shape[1] for l in logs), logs
    first = l1[:, :, None, None] * np.eye(k2)[None, None, :, :]  # (n, k1, k2, k2): temperature per class of 2
    second = l2[:, None, :, None] * np.eye(k1)[None, :, None, :]  # (n, k1, k2, k1)
    first = np.broadcast_to(first, (n, k1, k2, k2))
    second = np.broadcast_to(second, (n, k1, k2, k1))
    bias = np.broadcast_to(np.eye(k1 * k2).reshape(k1, k2, -1), (n, k1, k2, k1 * k2))
    return np.concatenate([first, second, bias], axis=3).reshape(n, k1 * k2, -1)


def _softmax_of(features: np.ndarray, theta: np.ndarray) -> np.ndarray:
    logits = features @ theta
    logits -= logits.max(1, keepdims=True)
    q = np.exp(logits)
    return q / q.sum(1, keepdims=True)


def fit_bcts(features: np.ndarray, labels: np.ndarray, biases: int, iterations: int = 50,
             ridge: float = 1e-4, start: np.ndarray | None = None) -> np.ndarray:
    """Bias-corrected temperature scaling: the parameters maximising the likelihood of softmax(features @
    theta) on labelled faces (temperatures first, then `biases` biases; convex; Newton's method with step
    halving). Starts from `start` (a bootstrap replicate: the whole set's fit), else temperature 1, bias 0."""
    n, k, d = features.shape
    onehot = np.eye(k)[labels]
    penalty = np.r_[np.zeros(d - biases), np.ones(biases)] * ridge

    def loss_of(theta):
        q = _softmax_of(features, theta)
        return -np.log(np.maximum((q * onehot).sum(1), 1e-300)).mean() + penalty @ theta ** 2 / 2, q

    theta = np.r_[np.ones(d - biases), np.zeros(biases)] if start is None else start.copy()
    loss, q = loss_of(theta)
    for _ in range(iterations):
        mean_feature = np.matmul(q[:, None, :], features)[:, 0, :]
        gradient = (q - onehot).reshape(-1) @ features.reshape(-1, d) / n + penalty * theta
        weighted = (features * np.sqrt(q)[:, :, None]).reshape(-1, d)
        hessian = (weighted.T @ weighted - mean_feature.T @ mean_feature) / n
        step = np.linalg.solve(hessian + np.diag(penalty + 1e-9), gradient)
        scale = 1.0
        while scale > 1e-4:
            candidate = theta - scale * step
            new_loss, new_q = loss_of(candidate)
            if new_loss <= loss:
                break
            scale /= 2
        else:
            break
        converged = loss - new_loss < 1e-10
        theta, loss, q = candidate, new_loss, new_q
        if converged:
            break
    return theta


def joint(probs: list[np.ndarray]) -> np.ndarray:
    """Per face, the product of several heads' probabilities over their joint classes (first attribute
    slowest): (n, K1), (n, K2) -> (n, K1 * K2)."""
    out = probs[0]
    for more in probs[1:]:
        out = (out[:, :, None] * more[:, None, :]).reshape(len(out), -1)
    return out


def joint_labels(labels: list[np.ndarray], sizes: list[int]) -> np.ndarray:
    return np.ravel_multi_index(tuple(labels), tuple(sizes)) if len(labels) > 1 else labels[0]


def _uniform_errors(scores: np.ndarray, truth: np.ndarray, k: int) -> np.ndarray:
    """Rows: each class recognised as often as the classes are on average, its errors spread evenly (the
    prior of a class the calibration set hardly holds)."""
    diagonal = scores[np.arange(len(truth)), truth].sum() / max(len(truth), 1)
    return diagonal * np.eye(k) + (1 - diagonal) / max(k - 1, 1) * (1 - np.eye(k))


def _columns(scores: np.ndarray, truth: np.ndarray, k: int, strength: float, prior: np.ndarray) -> np.ndarray:
    """Row i: the mean (hard or soft) prediction of the faces of true class i, with `strength` pseudo-faces
    predicted as prior's row i."""
    sums = np.zeros((k, k))
    np.add.at(sums, truth, scores)
    counts = np.bincount(truth, minlength=k).astype(np.float64)
    return (sums + strength * prior) / (counts + strength)[:, None]


@dataclass
class Quantifier:
    """A method fitted on a calibration set of one attribute (or the joint classes of two)."""

    method: str
    sizes: list[int]
    bcts: np.ndarray | None = None  # emq_bcts: the calibration's parameters
    matrix: np.ndarray | None = None  # acc, pacc: column i = mean (hard or soft) prediction of true class i
    source_prior: np.ndarray | None = None  # emq, emq_bcts

    @classmethod
    def fit(cls, method: str, probs: list[np.ndarray], labels: list[np.ndarray],
            start: Quantifier | None = None) -> Quantifier:
        """The method fitted on labelled faces (`start`: a fit of similar faces to begin from, emq_bcts)."""
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        sizes = [p.shape[1] for p in probs]
        fitted = cls(method, sizes)
        if method in ("cc", "pcc"):
            return fitted
        truth = joint_labels(labels, sizes)
        k = int(np.prod(sizes))
        if method == "emq_bcts":  # a bootstrap replicate: two Newton steps from the whole set's fit
            options = {"iterations": 2, "start": start.bcts} if start is not None else {}
            fitted.bcts = fit_bcts(bcts_features(probs), truth, k, **options)
        scores = fitted.transform(probs)
        label_counts = np.bincount(truth, minlength=k).astype(np.float64)
        if method in ("acc", "pacc"):
            scores = np.eye(k)[scores.argmax(1)] if method == "acc" else scores
            fitted.matrix = _columns(scores, truth, k, SMOOTHING, _uniform_errors(scores, truth, k)).T
            if len(sizes) > 1:
                independent = np.ones((1, 1))
                for i, y in enumerate(labels):  # each attribute's own rows, from its summed-up joint scores
                    own = scores.reshape(-1, *sizes).sum(axis=tuple(j + 1 for j in range(len(sizes)) if j != i))
                    y = np.asarray(y)
                    independent = np.kron(independent, _columns(own, y, sizes[i], SMOOTHING,
                                                                 _uniform_errors(own, y, sizes[i])))
                fitted.matrix = _columns(scores, truth, k, JOINT_SMOOTHING, independent).T
        elif method == "emq":
            fitted.source_prior = (label_counts + SMOOTHING) / (label_counts.sum() + SMOOTHING * k)
        else:
            fitted.source_prior = scores.mean(0)
        return fitted

    def transform(self, probs: list[np.ndarray]) -> np.ndarray:
        """Each face's (calibrated, joint) probabilities."""
        if self.bcts is not None:
            return _clip(_softmax_of(bcts_features(probs), self.bcts))
        return _clip(joint([np.asarray(p, np.float64) for p in probs]))

    def estimate(self, probs: list[np.ndarray], weights=None) -> np.ndarray:
        """The collection's shares of the (joint) classes (weights: each face's, default 1)."""
        if self.method == "cc":
            return counted(joint(probs), weights)
        scores = self.transform(probs)
        if self.method == "pcc":
            return np.average(scores, axis=0, weights=weights)
        if self.method == "acc":
            return simplex_least_squares(self.matrix, counted(scores, weights))
        if self.method == "pacc":
            return simplex_least_squares(self.matrix, np.average(scores, axis=0, weights=weights))
        return em_priors(scores, self.source_prior, weights=weights)


@dataclass
class Estimate:
    """Shares of the joint classes: the method's, each bootstrap replicate's, and the counted ones."""

    point: np.ndarray
    replicates: np.ndarray  # (bootstrap, classes)
    counted: np.ndarray
    allowance: float = 0.0  # the interval's widening on each side (ALLOWANCES)
    span: tuple[np.ndarray, np.ndarray] | None = None  # (low, high) the interval also spans (reporting.correction)


def estimate(method: str, calibration_probs: list[np.ndarray], calibration_labels: list[np.ndarray],
             probs: list[np.ndarray], bootstrap: int = 200, seed: int = 0, max_faces=100_000, weights=None) -> Estimate:
    """The method's shares of a collection and `bootstrap` replicates, each refitted on a resample of the
    calibration set and applied to a resample of the collection (of at most max_faces faces; weights: each
    face's, default 1, such as a person's frames, kept by the rows that the resample draws)."""
    rng = np.random.default_rng(seed)
    whole = Quantifier.fit(method, calibration_probs, calibration_labels)
    point = whole.estimate(probs, weights)
    n, m = len(probs[0]), len(calibration_labels[0])
    if method.startswith("emq"):
        max_faces = min(max_faces, EM_BOOTSTRAP_FACES)
    replicates = []
    for _ in range(bootstrap):
        rows = rng.integers(0, m, m)
        fitted = Quantifier.fit(method, [p[rows] for p in calibration_probs], [y[rows] for y in calibration_labels],
                                whole)
        faces = rng.integers(0, n, min(n, max_faces))
        replicates.append(fitted.estimate([p[faces] for p in probs], None if weights is None else weights[faces]))
    k = point.shape[0]
    return Estimate(point, np.array(replicates).reshape(-1, k), counted(joint(probs), weights))


def interval(point: np.ndarray, replicates: np.ndarray, confidence: float = 0.95, allowance: float = 0.0,
             span=None) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval of the replicates, widened where needed to hold the point estimate and by
    `allowance` on each side, within 0..1 (so never of zero width when the allowance is not 0), then to span
    the (low, high) arrays of `span`."""
    if not len(replicates):
        return point.copy(), point.copy()
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100 - tail], axis=0)
    low, high = np.maximum(np.minimum(low, point) - allowance, 0), np.minimum(np.maximum(high, point) + allowance, 1)
    return (low, high) if span is None else (np.minimum(low, span[0]), np.maximum(high, span[1]))
