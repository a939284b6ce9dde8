# SPDX-License-Identifier: MIT
# Metadata is in setup.cfg.  There is deliberately no pyproject.toml: with
# one, "pip install ./python" builds in an isolated environment that it
# must download setuptools into; without it, pip uses the setuptools (and
# wheel) already installed, so the install works offline.
from setuptools import setup

setup()
