"""Labelled data sets: UTKFace chips (folders, archives, name parsing, content-hash splits), labelled photo sets
such as FairFace (a CSV of labels, faces found by the detector), and `prepare`, which loads, de-duplicates and
splits them for training and evaluation alike.

May import: io, detection, models, results, labels, errors, paths."""
