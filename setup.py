"""Packaging lives in pyproject.toml; this file adds only what a pyproject table cannot say next to automatic
package discovery: the wheel's face_analysis/shipped_models/ is built from saved_model/ (the clone's model home,
where `train` writes; pyproject's package-dir maps it), so the shipped models are in the wheel without a second
copy in git. Data folders (static/, resources/, the model folders) are listed as packages so setuptools takes
their files as package data."""
from setuptools import find_namespace_packages, setup

SHIPPED_MODELS = ("facenet_model", "normal_model")  # only these: other folders in saved_model/ are not shipped

setup(packages=[*find_namespace_packages("src", include=["face_analysis", "face_analysis.*"]),
                "face_analysis.shipped_models", *(f"face_analysis.shipped_models.{name}" for name in SHIPPED_MODELS)])
