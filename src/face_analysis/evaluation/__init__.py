"""Evaluating a saved model as `run` executes it: on UTKFace chips or labelled photo sets, the figures per group
(metrics), the files and statistics README (report), and the plots.

May import: data, analyzer and everything below; not training, runners, serving or reporting."""
