"""`pip install ./python` against an installed libattnc: the extension's
compile and link flags come from pkg-config (`attnc.pc`; set
PKG_CONFIG_PATH to PREFIX/lib/pkgconfig for a non-system prefix), and the
library's directory is recorded as the extension's run path."""
import shlex
import subprocess

from setuptools import Extension, setup


def pkg_config(*flags):
    try:
        out = subprocess.run(["pkg-config", *flags, "attnc"], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit(f"attnc: pkg-config cannot find libattnc ({e}); install it (cmake --install) and set "
                         "PKG_CONFIG_PATH to its lib/pkgconfig") from e
    return shlex.split(out)


cflags, libs = pkg_config("--cflags"), pkg_config("--libs")
libdirs = [f[2:] for f in libs if f.startswith("-L")]
ext = Extension(
    "attnc._attnc",
    ["attnc/_attnc.c"],
    include_dirs=[f[2:] for f in cflags if f.startswith("-I")],
    library_dirs=libdirs,
    libraries=[f[2:] for f in libs if f.startswith("-l")],
    runtime_library_dirs=libdirs,
)
setup(ext_modules=[ext])
