"""``python -m course_lib.hackathon`` = ``python -m course_lib score``."""

import sys

from .cli import main

sys.exit(main())
