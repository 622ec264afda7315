"""The optional C part of the recorder (recorder/source/_native.c). Everything else is in pyproject.toml.

optional=True: where no C compiler or Python headers are at hand the install goes on without it,
and the recorder runs its Python loops instead (recorder/source/native.py says which one runs).
"""
from setuptools import Extension, setup

FLAGS = ["-O2", "-Wall", "-Wno-unused-function"]
setup(ext_modules=[Extension("recorder.source._native", ["recorder/source/_native.c"], optional=True, extra_compile_args=FLAGS)])
