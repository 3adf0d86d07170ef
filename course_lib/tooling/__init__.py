"""The course's command-line tools (``python -m course_lib VERB``): the doctor, learner copies,
the course map, the runner, the agenda, packing and the install bundle. What lessons import at
run time is in ``course_lib.runtime``."""
