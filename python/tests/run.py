"""ctest's entry (tests/python.cmake): `run.py numpy|torch` runs pytest on
test_<kind>.py; exit 77 (ctest: skipped) for torch where it is not
installed for this interpreter (ATTNC_TORCH_PYTHON names one that has it)."""
import importlib.util
import os
import sys

kind = sys.argv[1]
if kind == "torch" and importlib.util.find_spec("torch") is None:
    print(f"SKIP: PyTorch is not installed for {sys.executable} (set ATTNC_TORCH_PYTHON to a python that has it)")
    sys.exit(77)
if importlib.util.find_spec("pytest") is None:
    print(f"pytest is not installed for {sys.executable} (Debian: python3-pytest; scripts/install-deps.sh installs it)")
    sys.exit(1)
import pytest  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "--rootdir", here, os.path.join(here, f"test_{kind}.py")]))
