"""Build of the optional C speedups of the host codec; the metadata is in pyproject.toml."""

from setuptools import Extension, setup

# optional: without a C compiler the codec runs its pure-Python reference (slower, same results).
setup(ext_modules=[Extension("protocol._speedups", ["protocol/_speedups.c"], optional=True,
                             extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror=vla"])])
