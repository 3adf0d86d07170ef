"""The room: one JupyterHub for a workshop, for the laptops that cannot install the course.

``python -m course_lib room`` starts JupyterHub (with its real proxy, configurable-http-proxy),
lets participants in with a workshop code, gives each one a system account with a private home,
their learner copies of the lessons, the course's environment as the kernel and the hand-out
model read-only, and stops everything on Ctrl+C. One module per idea:

- ``names``: the participant names the room accepts and the system accounts they map to;
- ``accounts``: creating and removing those accounts and their private homes (needs root);
- ``access``: which directories other accounts cannot pass through, and opening them for a run;
- ``participant``: what runs as the participant before their server starts (learner copies,
  lab settings, links to the shared model);
- ``hub``: the JupyterHub classes and configuration (runs inside the hub process);
- ``cli``: the command line, which starts and stops the hub.
"""
