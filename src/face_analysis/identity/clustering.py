"""Faces into people: the faces' L2-normalised embeddings, a k-nearest-neighbour graph of the pairs closer than
the threshold (faiss, exact, brute force in blocks: memory grows with faces x neighbours, never faces squared),
its connected components (scipy), and inside each component exact average linkage (scipy.cluster.hierarchy) cut
at the threshold: two groups of faces are one person when their faces are on average closer than it, and never
when they hold two faces of one photo (a photo shows a person once; keep_apart makes sure of it) or two rows
said to be apart (video: two tracks on screen at once; keep_pairs_apart). With join_fragments (`run --people
--recurring`, for collections in which everyone recurs), a person of a few faces is then joined to the nearest
larger one (join_small). A
component larger than EXACT_LIMIT faces (its distance matrix would need EXACT_LIMIT^2 / 2 doubles) is split by
scikit-learn's AgglomerativeClustering along the graph's edges instead. People are numbered 1, 2, ... in the
order their first face comes ("components": the components themselves, single linkage, for comparison)."""
from __future__ import annotations

import numpy as np

# chosen on the validation identities of benchmarks/people_photos.py and people.py, the best mean BCubed F1 of the
# two (docs/people.md):
THRESHOLD = 1.08  # euclidean distance between unit embeddings (squared: 2 - 2 cos)
NEIGHBOURS = 30  # edges per face in the graph the linkage may merge along
METHOD = "average"  # or "components": the thresholded graph's connected components (single linkage)
APART = 1e6  # the distance set between two faces of one photo: no average of a merge that holds it is under THRESHOLD
EXACT_LIMIT = 12_000  # faces in one component that exact average linkage takes (about 580 MB of distances)
# join_small (--recurring), chosen on the validation identities of benchmarks/people_photos.py (docs/people.md):
FRAGMENT_FACES = 3  # a person of at most this many faces is a fragment of a larger one, if near enough
FRAGMENT_DISTANCE = 1.25  # between the unit means of the fragment's faces and of the larger person's


def knn_graph(embeddings: np.ndarray, threshold: float, neighbours: int):
    """The symmetric sparse graph of each face's `neighbours` nearest faces closer than `threshold` (None: all of
    them) (CSR, distances as weights; an edge of length 0 is kept as a tiny positive weight). The neighbours
    are found exactly, by brute force (faiss: BLAS in blocks, on the cores this process may use)."""
    import faiss
    from scipy import sparse

    from face_analysis.models.compiled import available_cores

    count = len(embeddings)
    k = min(neighbours + 1, count)
    faiss.omp_set_num_threads(available_cores())
    vectors = np.ascontiguousarray(embeddings, np.float32)
    squared, indices = faiss.knn(vectors, vectors, k)
    distances = np.sqrt(np.maximum(squared, 0))
    rows = np.repeat(np.arange(count), k)
    keep = (indices.ravel() != rows) & (indices.ravel() >= 0)
    if threshold is not None:
        keep &= distances.ravel() < threshold
    weights = np.maximum(distances.ravel()[keep], 1e-6)
    graph = sparse.csr_matrix((weights, (rows[keep], indices.ravel()[keep])), shape=(count, count))
    return graph.maximum(graph.T)


def cluster_embeddings(embeddings, threshold: float = THRESHOLD, neighbours: int = NEIGHBOURS,
                       method: str = METHOD, photos=None, apart=None, join_fragments: bool = False) -> np.ndarray:
    """A person number (1, 2, ...) for each row of `embeddings` (N, D): rows closer than `threshold` on average
    (method "average") or linked by a chain of such rows ("components") are one person. photos: each row's photo
    (any labels); faces of one photo are different people (keep_apart). apart: pairs of rows (K, 2) that are
    different people (keep_pairs_apart). join_fragments: people of a few faces joined to the nearest larger
    person (join_small), for collections in which everyone recurs."""
    from scipy.sparse.csgraph import connected_components

    embeddings = np.asarray(embeddings, np.float32)
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings: a (faces, dimensions) array, not of shape {embeddings.shape}")
    if len(embeddings) == 0:
        return np.zeros(0, np.int64)
    embeddings = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    if photos is not None:
        photos = np.unique(np.asarray(photos), return_inverse=True)[1].reshape(-1)  # any labels, as integers
    apart = np.zeros((0, 2), np.int64) if apart is None else np.asarray(apart, np.int64).reshape(-1, 2)
    if len(apart) and (apart.min() < 0 or apart.max() >= len(embeddings)):
        raise ValueError(f"apart: pairs of rows 0 to {len(embeddings) - 1}")
    graph = knn_graph(embeddings, threshold, neighbours)
    _, component = connected_components(graph, directed=False)
    labels = component.astype(np.int64)
    if method == "average":
        labels = _average_linkage(embeddings, graph, component, threshold, photos, apart)
    elif method != "components":
        raise ValueError(f"method: 'average' or 'components', not {method!r}")
    if photos is not None:
        labels = keep_apart(embeddings, labels, photos)
    labels = keep_pairs_apart(embeddings, labels, apart)
    if join_fragments:
        labels = join_small(embeddings, labels, photos, apart)
    return first_seen_numbers(labels)


def _average_linkage(embeddings, graph, component: np.ndarray, threshold: float, photos=None,
                     apart=np.zeros((0, 2), np.int64)) -> np.ndarray:
    """Average linkage cut at the threshold inside each connected component: exact (scipy) up to EXACT_LIMIT
    faces, two faces of one photo (photos) and the pairs `apart` set APART from each other, else merging only
    along the graph's edges (scikit-learn)."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    labels, next_label = component.copy(), int(component.max()) + 1
    inside = apart[(component[apart[:, 0]] == component[apart[:, 1]]) & (apart[:, 0] != apart[:, 1])]
    order = np.argsort(component, kind="stable")
    bounds = np.flatnonzero(np.diff(component[order])) + 1
    for members in np.split(order, bounds):
        if len(members) < 3:
            continue  # one face, or two closer than the threshold: one person
        if len(members) <= EXACT_LIMIT:
            distances = pdist(embeddings[members].astype(np.float64))
            if photos is not None:  # a face's distance to another face of its photo: APART (condensed order)
                distances[pdist(photos[members, None].astype(np.float64), "cityblock") == 0] = APART
            if len(inside):  # the pairs apart in this component, as positions among its (ascending) members
                i, j = np.sort(np.searchsorted(members, inside[component[inside[:, 0]] == component[members[0]]]), 1).T
                distances[len(members) * i - i * (i + 1) // 2 + j - i - 1] = APART  # condensed index of (i, j)
            part = fcluster(linkage(distances, "average"), threshold, "distance") - 1
        else:
            from sklearn.cluster import AgglomerativeClustering

            part = AgglomerativeClustering(n_clusters=None, distance_threshold=threshold, linkage="average",
                                           connectivity=graph[members][:, members]).fit(embeddings[members]).labels_
        labels[members] = next_label + part
        next_label += int(part.max()) + 1
    return labels


def keep_apart(embeddings: np.ndarray, labels: np.ndarray, photos: np.ndarray) -> np.ndarray:
    """Labels where no person holds two faces of one photo: of a person's faces in one photo, the one nearest the
    person's mean embedding stays and each other one becomes a person of its own."""
    labels = labels.copy()
    next_label = int(labels.max()) + 1 if len(labels) else 0
    order = np.lexsort((photos, labels))
    pairs = np.stack([labels[order], photos[order]], 1)
    repeated = np.flatnonzero((pairs[1:] == pairs[:-1]).all(1))
    for label in np.unique(labels[order[repeated]]):
        members = np.flatnonzero(labels == label)
        centre = embeddings[members].mean(0)
        nearest_first = members[np.argsort(np.linalg.norm(embeddings[members] - centre, axis=1), kind="stable")]
        seen = set()
        for face in nearest_first:
            if photos[face] in seen:
                labels[face], next_label = next_label, next_label + 1
            seen.add(photos[face])
    return labels


def continue_people(earlier: np.ndarray, earlier_people, embeddings, photos=None, **options) -> np.ndarray:
    """Person numbers for new faces (`embeddings`) that continue those of earlier faces (`earlier`, numbered
    `earlier_people`), as `run --people --resume` needs: all clustered together (cluster_embeddings, photos:
    each row's photo, earlier rows first); a new face whose person holds earlier faces takes the number most of
    them have, other people get numbers after the largest earlier one, in the order their first face comes, and
    a number already given to a face of the same photo is never given twice. The earlier faces keep theirs."""
    embeddings = np.asarray(embeddings, np.float32)
    earlier = np.asarray(earlier, np.float32).reshape(-1, embeddings.shape[-1])
    earlier_people = np.asarray(earlier_people, np.int64).reshape(-1)
    if len(earlier) != len(earlier_people):
        raise ValueError(f"earlier: {len(earlier)} embeddings for {len(earlier_people)} person numbers")
    if len(embeddings) == 0:
        return np.zeros(0, np.int64)
    labels = cluster_embeddings(np.concatenate([earlier, embeddings]), photos=photos, **options)
    count = len(earlier)
    number: dict[int, int] = {}
    for label in np.unique(labels[:count]).tolist():
        held, times = np.unique(earlier_people[labels[:count] == label], return_counts=True)
        number[label] = int(held[np.argmax(times)])
    next_number = int(earlier_people.max(initial=0)) + 1
    people, given = np.zeros(len(embeddings), np.int64), set()
    for index, label in enumerate(labels[count:].tolist()):
        if label not in number:
            number[label], next_number = next_number, next_number + 1
        photo = None if photos is None else photos[count + index]
        person = number[label]
        if photo is not None and (photo, person) in given:  # two earlier people joined now: one face each
            person, next_number = next_number, next_number + 1
        people[index] = person
        given.add((photo, person))
    return people


def keep_pairs_apart(embeddings: np.ndarray, labels: np.ndarray, apart: np.ndarray) -> np.ndarray:
    """Labels where no pair of `apart` shares one: of such a pair, the row farther from its person's mean
    embedding becomes a person of its own, until none is left."""
    labels = labels.copy()
    next_label = int(labels.max()) + 1 if len(labels) else 0
    while True:
        joined = apart[(labels[apart[:, 0]] == labels[apart[:, 1]]) & (apart[:, 0] != apart[:, 1])]
        if not len(joined):
            return labels
        i, j = joined[0]
        centre = embeddings[labels == labels[i]].mean(0)
        farther = i if np.linalg.norm(embeddings[i] - centre) > np.linalg.norm(embeddings[j] - centre) else j
        labels[farther], next_label = next_label, next_label + 1


def join_small(embeddings: np.ndarray, labels: np.ndarray, photos=None, apart=np.zeros((0, 2), np.int64),
               most: int = FRAGMENT_FACES, distance: float = FRAGMENT_DISTANCE) -> np.ndarray:
    """Labels where each person of at most `most` faces joins the nearest person of more faces, when the unit
    means of their embeddings are closer than `distance` and no photo (photos) or pair of `apart` would then
    hold that person twice. Where people recur, such small people are a person's unusual photos (a profile,
    another decade); where many people appear once, they are those people, and this joins strangers."""
    import faiss

    names, position, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    means = np.zeros((len(names), embeddings.shape[1]), np.float32)
    np.add.at(means, position, embeddings)
    means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    large, small = np.flatnonzero(sizes > most), np.flatnonzero(sizes <= most)
    joined = labels.copy()
    if not len(large) or not len(small):
        return joined
    squared, nearest = faiss.knn(means[small], means[large], 1)  # each small person's nearest larger one
    rows_of = np.split(np.argsort(position, kind="stable"), np.cumsum(sizes)[:-1])
    held = {index: set(rows_of[index].tolist()) for index in large}  # rows, and then their photos and pairs apart
    taken = {index: set() if photos is None else set(photos[rows_of[index]].tolist()) for index in large}
    apart_of = {}
    for i, j in apart.tolist():
        apart_of.setdefault(i, set()).add(j)
        apart_of.setdefault(j, set()).add(i)
    for index, gap, near in zip(small, squared[:, 0], nearest[:, 0]):
        target, rows = large[near], rows_of[index].tolist()
        seen = set() if photos is None else set(photos[rows].tolist())
        if gap >= distance ** 2 or seen & taken[target] or any(apart_of.get(row, set()) & held[target] for row in rows):
            continue
        joined[rows] = names[target]
        held[target] |= set(rows)
        taken[target] |= seen
    return joined
    rows_of = np.split(np.argsort(position, kind="stable"), np.cumsum(sizes)[:-1])
    photos_of = {} if photos is None else {index: set(photos[rows_of[index]].tolist()) for index in large}
    apart_of = {}  # row -> the rows it is apart from
    for i, j in apart.tolist():
        apart_of.setdefault(i, set()).add(j)
        apart_of.setdefault(j, set()).add(i)
    members = {index: set(rows_of[index].tolist()) for index in large} if apart_of else {}
    for index in np.flatnonzero(sizes <= most):
        gaps = np.linalg.norm(means[large] - means[index], axis=1)
        target = large[int(np.argmin(gaps))]
        rows = rows_of[index]
        if gaps.min() >= distance or (photos is not None and photos_of[target] & set(photos[rows].tolist())) or \
                any(apart_of.get(row, set()) & members.get(target, set()) for row in rows.tolist()):
            continue
        joined[rows] = names[target]
        if photos is not None:
            photos_of[target] |= set(photos[rows].tolist())
        if apart_of:
            members[target] |= set(rows.tolist())
    return joined


def first_seen_numbers(labels) -> np.ndarray:
    """Labels renumbered 1, 2, ... in the order each first appears."""
    labels = np.asarray(labels)
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first)] = np.arange(1, len(first) + 1)
    return rank[inverse.reshape(-1)]
