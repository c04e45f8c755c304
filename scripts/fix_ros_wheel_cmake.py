"""Rewrite the wheel builder's include paths in the ROS 2 wheels' exported CMake files.

The ROS 2 Python wheels ship CMake export files that hard-code the wheel builder's
Python and numpy include folders (/opt/python/cp311-cp311/...). Building an interface
package against them fails with "includes non-existent path" until those paths name this
interpreter's folders. Idempotent: a fixed file is left as it is. Run it with the project
environment's Python after every (re)install of a message wheel.
"""

import re
import sys
import sysconfig
from pathlib import Path

import numpy

# The builder's interpreter prefix, whatever its version tag (cp311-cp311, cp312-cp312, ...).
BUILDER_PYTHON_INCLUDE = re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+")
BUILDER_NUMPY_INCLUDE = re.compile(
    r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/_core/include"
)


def fix_file(path: Path, python_include: str, numpy_include: str) -> bool:
    """Rewrite one CMake file in place; True when it changed."""
    text = path.read_text()
    fixed = BUILDER_NUMPY_INCLUDE.sub(numpy_include, text)
    fixed = BUILDER_PYTHON_INCLUDE.sub(python_include, fixed)
    if fixed == text:
        return False
    path.write_text(fixed)
    return True


def main() -> int:
    share = Path(sys.prefix) / "share"
    python_include = sysconfig.get_paths()["include"]
    numpy_include = numpy.get_include()
    changed = [p for p in sorted(share.glob("*/cmake/*.cmake")) if fix_file(p, python_include, numpy_include)]
    print(f"fix_ros_wheel_cmake: {len(changed)} CMake file(s) rewritten under {share}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
