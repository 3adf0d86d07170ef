"""course_lib: the tested implementations behind the course notebooks.

Each module holds one idea of the course; the notebooks derive the idea, then import it from here.
"""

from .runtime.offline import install_guard_if_requested as _install_guard_if_requested

# Under the test suite every process that imports course_lib refuses non-loopback connections.
_install_guard_if_requested()

from .runtime.environment import setup  # noqa: E402
from .tooling.checkup import doctor  # noqa: E402

__all__ = ["setup", "doctor"]
from .settings import VERSION as __version__  # noqa: E402, F401
