"""Unit tests start with no wrong exercise tries counted: the checker shows the expected values
from the second wrong try of an exercise in a process, and a test must not depend on which tests
ran before it on the same worker."""

import pytest


@pytest.fixture(autouse=True)
def _no_wrong_tries_counted():
    from course_lib.runtime.exercises import forget_tries

    forget_tries()
