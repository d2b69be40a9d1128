"""Edge runtime: wire protocol, brain, gateway, ring buffer, watchdog, signal store, telemetry.

Imports stay light (numpy, pyzmq, msgpack, psutil; no pandas or torch at module level) because
this is what the boards run.
"""
