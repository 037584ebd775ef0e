"""The composition root: the one place that knows every package and puts the product together.

processor owns the daemon and its commands, ops the scheduled work and its
commands; neither imports the other's wiring.  Here the commands of both are
registered, ops' configuration sections join the settings checks, and the
daemon gets its scheduler.
"""
