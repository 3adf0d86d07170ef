"""What a lesson's kernel uses at run time: ``setup()``, the offline guard and the exercise
checker. The command-line tools live in ``course_lib.tooling``."""
