"""The worker process's side: its entry (``python -m processor.worker``), the engines, audio decoding,
model resolution, hardware selection and the transcript writers.

What lives here may be touched by a worker; it imports nothing of the daemon's side
(no store, no scheduler, no intake): ``tests/unit/test_architecture.py`` checks that in
a fresh interpreter.  The daemon side may import from here (model resolution at start).
"""
