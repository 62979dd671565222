"""The optional compiled build. With DEVSTRAL_PROXY_COMPILE=1 the hot modules of the I/O half
(pyproject.toml: [tool.devstral-proxy] compiled) are compiled with mypyc; without it, pure Python.

`make compiled` builds them in place (the suite then runs on them); `make clean-compiled` undoes it.
"""

import os
import tomllib
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
ext_modules = []
if os.environ.get("DEVSTRAL_PROXY_COMPILE") == "1":
    from mypyc.build import mypycify

    names = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["devstral-proxy"]["compiled"]
    os.chdir(ROOT / "proxy")  # module names from the folder that holds the package
    # one shared library inside the package (devstral_proxy/compiled__mypyc), not at the top level
    ext_modules = mypycify(
        [f"devstral_proxy/{name}.py" for name in names], opt_level="3", group_name="devstral_proxy.compiled", target_dir=str(ROOT / "build" / "mypyc")
    )
    os.chdir(ROOT)
setup(ext_modules=ext_modules)
