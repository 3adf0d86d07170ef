"""Command line: ``python -m course_lib doctor | student | serve ...``."""

from __future__ import annotations

import sys

USAGE = """usage: python -m course_lib COMMAND [options]

commands:
  doctor     check this machine for the course (exit status 1 when something fails)
  student    write student versions of the notebooks (solutions replaced by stubs)
  serve      serve a fine-tuned model over HTTP (see --help)
  map        print the course map with measured notebook run times (Markdown)
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "doctor":
        from .tooling.checkup import main as run
    elif command == "student":
        from .tooling.student import main as run
    elif command == "map":
        from .tooling.coursemap import course_map_markdown

        print(course_map_markdown(link_prefix="notebooks/"))
        return 0
    elif command == "serve":
        from .serving.cli import main as run
    else:
        print(
            f"unknown command {command!r}; expected one of: doctor, student, serve, map\n\n{USAGE}",
            file=sys.stderr,
        )
        return 2
    return run(rest)


if __name__ == "__main__":
    sys.exit(main())
