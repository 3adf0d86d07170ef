"""Course tooling, kept apart from the lesson code: the offline guard, ``setup()``, the doctor,
learner copies, the course map and the exercise checkers."""
