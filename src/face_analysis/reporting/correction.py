"""One attribute's corrected shares as `report` computes them: its method, the strata it is corrected within,
the allowance of the default method's intervals, and the other corrections those intervals also span."""
from __future__ import annotations

import numpy as np

from face_analysis.reporting import quantify
from face_analysis.reporting.attributes import ATTRIBUTES, SPANNED_BY, STRATA, derived
from face_analysis.reporting.calibration import Calibration


def method_of(attribute: str, method: str | None = None) -> str:
    """The method that corrects an attribute: the one asked for, else the attribute's default."""
    return method or quantify.DEFAULT_METHODS[attribute]


def _estimate(method: str, calibration: Calibration, probs: dict[str, np.ndarray], attribute: str, strata,
              bootstrap: int, seed: int, bootstrap_faces: int, weights=None) -> quantify.Estimate:
    """The method on the joint classes of the attribute and those of its strata that both the faces and the
    calibration set have, summed over the strata."""
    strata = [s for s in strata if derived(probs, None, s) is not None and derived(calibration.probs, None, s) is not None]
    names = [attribute] + strata
    cal_probs, cal_labels = calibration.arrays(names)
    found = quantify.estimate(method, cal_probs, cal_labels, [derived(probs, None, n)[0] for n in names],
                              bootstrap, seed, bootstrap_faces, weights)
    k = len(ATTRIBUTES[attribute])
    return quantify.Estimate(found.point.reshape(k, -1).sum(1),
                             found.replicates.reshape(len(found.replicates), k, found.point.size // k).sum(2),
                             found.counted.reshape(k, -1).sum(1))


def corrected_shares(method: str, calibration: Calibration, probs: dict[str, np.ndarray], attribute: str,
                     bootstrap: int = 200, seed: int = 0, bootstrap_faces: int = 100_000,
                     stratified: bool = True, weights=None) -> quantify.Estimate:
    """One attribute's shares among faces with these probabilities: with `stratified`, the method runs on the
    joint classes of the attribute and its strata (attributes.STRATA) and the shares are summed over the strata,
    so a collection whose mix of a stratum differs from the calibration set's (only elders, say) is corrected
    with the errors the model makes on that mix. The default method's intervals are widened by
    quantify.ALLOWANCES and span the intervals of the corrections of attributes.SPANNED_BY (with the bootstrap).
    weights: each face's (quantify.estimate), default 1."""
    strata = STRATA.get(attribute, ()) if stratified else ()
    found = _estimate(method, calibration, probs, attribute, strata, bootstrap, seed, bootstrap_faces, weights)
    if method != quantify.DEFAULT_METHODS[attribute]:
        return found
    found.allowance = quantify.ALLOWANCES[attribute]
    spans = [quantify.interval(other.point, other.replicates, allowance=found.allowance)
             for other in (_estimate(other_method, calibration, probs, attribute, other_strata, bootstrap, seed,
                                     bootstrap_faces, weights)
                           for other_method, other_strata in SPANNED_BY.get(attribute, ()))
             if bootstrap and len(other.replicates)]
    if spans:
        found.span = (np.min([low for low, _ in spans], axis=0), np.max([high for _, high in spans], axis=0))
    return found
