"""Packaging lives in pyproject.toml; this file adds only what a pyproject table cannot say next to automatic
package discovery: the wheel's face_analysis/shipped_models/ is built from saved_model/ (the clone's model home,
where `train` writes) and its face_analysis/xml/ from xml/ (the Haar cascade, where the original project keeps
it), so both are in the wheel without a second copy in git. Data folders (static/, resources/, the model
folders) are listed as packages so setuptools takes their files as package data.

An editable install (`pip install -e .`, `make run`) maps only src/: the package then finds saved_model/ and
xml/ in the clone itself (paths.py), and setuptools installs a plain path entry, without the notice it prints
for a package mapped from several folders."""
import sys

from setuptools import find_namespace_packages, setup

SHIPPED_MODELS = ("facenet_model", "normal_model")  # only these: other folders in saved_model/ are not shipped
EDITABLE = bool({"editable_wheel", "develop"} & set(sys.argv[1:]))
MAPPED = {} if EDITABLE else {"face_analysis.shipped_models": "saved_model", "face_analysis.xml": "xml"}

setup(package_dir={"": "src", **MAPPED},
      packages=[*find_namespace_packages("src", include=["face_analysis", "face_analysis.*"]), *MAPPED,
                *(f"face_analysis.shipped_models.{name}" for name in SHIPPED_MODELS if MAPPED)])
