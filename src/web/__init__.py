"""The web face: ``spool web``, an HTTP API (jobs, OpenAI- and whisper-asr-webservice-compatible) and a live UI.

A separate process on the read side (DESIGN.md, "The web face"): it reads the
event store, appends commands (cancel, retry) and hands uploads to the inbox
exactly as ``spool submit`` does (:func:`spool.handover.hand_over`); only the
daemon runs jobs.  Nothing imports this package but the composition root.
"""
