"""Maps the folders backend/ and tui/ to the import packages labdeck.backend and labdeck.tui.

Generic top-level names (`backend`, `tui`) would collide with users' own code (a runner
started from a web project's folder would import its `backend/`) and with other
distributions; `labdeck` itself is an implicit namespace holding the two. Everything
else about the distribution is in pyproject.toml.
"""

from setuptools import find_packages, setup

FOLDERS = {"backend": "labdeck.backend", "tui": "labdeck.tui"}

packages = [
    FOLDERS[name.split(".")[0]] + name[len(name.split(".")[0]) :]
    for name in find_packages(include=[f"{folder}*" for folder in FOLDERS])
]
setup(packages=packages, package_dir={dotted: folder for folder, dotted in FOLDERS.items()})
