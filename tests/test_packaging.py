"""The package ships whole: every folder of modules is a regular package that setuptools finds."""

from pathlib import Path

from setuptools import find_packages

import rlhf_ray

ROOT = Path(rlhf_ray.__file__).parent


def test_every_module_folder_is_a_found_package():
    folders = {path.parent for path in ROOT.rglob("*.py")}
    names = {".".join(folder.relative_to(ROOT.parent).parts) for folder in folders}
    assert names <= set(find_packages(str(ROOT.parent), include=["rlhf_ray*"]))
