"""Can Qt's xcb platform plugin load here? Asked before the viewer creates its QApplication.

PySide6 6.5+ wheels bundle Qt but not the X11 libraries its xcb plugin links against (libxcb-cursor0 and a
few other xcb/xkb libraries), which a minimal Linux desktop lacks. Qt then aborts with "Could not load the
Qt platform plugin" and advises reinstalling, which does not help. This module lists the plugin's missing
shared libraries (``ldd``, else a ``ctypes`` load in a child process) without importing Qt, and turns them
into one sentence naming the Debian/Ubuntu and Fedora packages to install.

The check only runs where xcb is what Qt will use: Linux, ``DISPLAY`` set, ``QT_QPA_PLATFORM`` unset (and
not a Wayland session) or naming xcb first. ``FASHIONVIEWER_QT_PLUGIN`` names another plugin file to check
(a different Qt build, or a test). Whatever goes wrong inside the check itself means "no problem found",
so it can never stop a viewer that would have started.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Mapping

PLUGIN_ENV = "FASHIONVIEWER_QT_PLUGIN"
XCB_PLUGIN = "libqxcb.so"
PROBE_TIMEOUT_S = 10.0

# Library name up to ".so" -> (Debian/Ubuntu package, Fedora package), for what the xcb plugin and the Qt
# libraries it loads need beyond a base system.
PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb-cursor": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-ewmh": ("libxcb-ewmh2", "xcb-util-wm"),
    "libxcb-image": ("libxcb-image0", "xcb-util-image"),
    "libxcb-keysyms": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-render-util": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util": ("libxcb-util1", "xcb-util"),
    "libxcb-randr": ("libxcb-randr0", "libxcb"),
    "libxcb-shape": ("libxcb-shape0", "libxcb"),
    "libxcb-shm": ("libxcb-shm0", "libxcb"),
    "libxcb-sync": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes": ("libxcb-xfixes0", "libxcb"),
    "libxcb-render": ("libxcb-render0", "libxcb"),
    "libxcb-xkb": ("libxcb-xkb1", "libxcb"),
    "libxcb-xinerama": ("libxcb-xinerama0", "libxcb"),
    "libxcb-xinput": ("libxcb-xinput0", "libxcb"),
    "libxcb-glx": ("libxcb-glx0", "libxcb"),
    "libxcb": ("libxcb1", "libxcb"),
    "libxkbcommon-x11": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon": ("libxkbcommon0", "libxkbcommon"),
    "libX11-xcb": ("libx11-xcb1", "libX11-xcb"),
    "libX11": ("libx11-6", "libX11"),
    "libXau": ("libxau6", "libXau"),
    "libXdmcp": ("libxdmcp6", "libXdmcp"),
    "libSM": ("libsm6", "libSM"),
    "libICE": ("libice6", "libICE"),
    "libXrender": ("libxrender1", "libXrender"),
    "libXext": ("libxext6", "libXext"),
    "libEGL": ("libegl1", "libglvnd-egl"),
    "libGL": ("libgl1", "libglvnd-glx"),
    "libGLX": ("libglx0", "libglvnd-glx"),
    "libGLdispatch": ("libglvnd0", "libglvnd"),
    "libOpenGL": ("libopengl0", "libglvnd-opengl"),
    "libfontconfig": ("libfontconfig1", "fontconfig"),
    "libfreetype": ("libfreetype6", "freetype"),
    "libdbus-1": ("libdbus-1-3", "dbus-libs"),
    "libglib-2.0": ("libglib2.0-0", "glib2"),
    "libgthread-2.0": ("libglib2.0-0", "glib2"),
}

_LDD_MISSING = re.compile(r"^\s*(\S+) => not found", re.MULTILINE)  # glibc's ldd
_MUSL_MISSING = re.compile(r"Error loading shared library (\S+?):")  # musl's ldd
_DLOPEN_MISSING = re.compile(r"(\S+\.so[\w.]*): cannot open shared object file")


def qt_platform(environ: Mapping[str, str]) -> str:
    """The platform plugin Qt tries first: ``QT_QPA_PLATFORM``'s first entry, else xcb or a Wayland session's."""
    chosen = environ.get("QT_QPA_PLATFORM", "").strip()
    if chosen:
        return chosen.split(";")[0].split(":")[0].strip()
    if environ.get("XDG_SESSION_TYPE") == "wayland" and environ.get("WAYLAND_DISPLAY"):
        return "wayland"
    return "xcb"


def needs_xcb_check(environ: Mapping[str, str], platform: str = sys.platform) -> bool:
    """True where the viewer would start on X11 through the xcb plugin: Linux, a DISPLAY, xcb chosen."""
    return (
        platform.startswith("linux")
        and bool(environ.get("DISPLAY"))
        and qt_platform(environ) == "xcb"
    )


def find_xcb_plugin(environ: Mapping[str, str]) -> Path | None:
    """The xcb plugin file Qt would load: ``FASHIONVIEWER_QT_PLUGIN``, Qt's plugin path, or PySide6's own."""
    if environ.get(PLUGIN_ENV):
        return Path(environ[PLUGIN_ENV])
    if environ.get("QT_QPA_PLATFORM_PLUGIN_PATH"):
        candidate = Path(environ["QT_QPA_PLATFORM_PLUGIN_PATH"]) / XCB_PLUGIN
        if candidate.is_file():
            return candidate
    spec = importlib.util.find_spec("PySide6")  # locates the package without loading Qt
    for root in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(root) / "Qt" / "plugins" / "platforms" / XCB_PLUGIN
        if candidate.is_file():
            return candidate
    return None


def missing_libraries(library: Path, use_ldd: bool = True) -> list[str] | None:
    """Shared libraries ``library`` (or one it loads) needs and the system lacks; None when it cannot tell.

    ``ldd`` names every missing library; without it a child process loads ``library`` with ctypes,
    which names the first one only.
    """
    ldd = shutil.which("ldd") if use_ldd else None
    if ldd:
        done = subprocess.run(
            [ldd, str(library)], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S
        )
        output = done.stdout + done.stderr
        missing = _LDD_MISSING.findall(output) + _MUSL_MISSING.findall(output)
        if missing or done.returncode == 0:
            return list(dict.fromkeys(missing))
        return None  # not a dynamic library ldd understands: no verdict
    done = subprocess.run(
        [sys.executable, "-c", "import ctypes, sys; ctypes.CDLL(sys.argv[1])", str(library)],
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_S,
    )
    if done.returncode == 0:
        return []
    first = _DLOPEN_MISSING.search(done.stderr)
    return [first.group(1)] if first and Path(first.group(1)).name != library.name else None


def install_advice(missing: list[str]) -> str:
    """How to install ``missing`` on Debian/Ubuntu and on Fedora, as one parenthesised phrase."""
    stems = [name.split(".so")[0] for name in missing]
    debian = list(dict.fromkeys(PACKAGES[stem][0] for stem in stems if stem in PACKAGES))
    fedora = list(dict.fromkeys(PACKAGES[stem][1] for stem in stems if stem in PACKAGES))
    unknown = [name for name, stem in zip(missing, stems, strict=False) if stem not in PACKAGES]
    parts = []
    if debian:
        parts.append(
            f"Debian/Ubuntu: sudo apt-get install {' '.join(debian)}; Fedora: sudo dnf install {' '.join(fedora)}"
        )
    if unknown:
        parts.append(
            "find the package of "
            + ", ".join(unknown)
            + " with: apt-file search NAME, or dnf provides '*/NAME'"
        )
    return "(" + "; ".join(parts) + ")"


def xcb_platform_problem(environ: Mapping[str, str] | None = None) -> str | None:
    """One sentence naming what Qt's xcb plugin lacks here and how to install it, or None if it can load.

    None also when the check does not apply (see :func:`needs_xcb_check`) or cannot tell; never raises.
    """
    environ = os.environ if environ is None else environ
    try:
        if not needs_xcb_check(environ):
            return None
        plugin = find_xcb_plugin(environ)
        missing = missing_libraries(plugin) if plugin is not None and plugin.is_file() else None
    except Exception:  # noqa: BLE001 - a failing check must not stop a viewer that may well start
        return None
    if not missing:
        return None
    names = ", ".join(missing[:-1]) + " and " + missing[-1] if len(missing) > 1 else missing[0]
    verb = "are" if len(missing) > 1 else "is"
    return (
        f"the viewer cannot open a window: Qt's xcb platform plugin needs {names}, which {verb} not installed "
        f"{install_advice(missing)}"
    )
