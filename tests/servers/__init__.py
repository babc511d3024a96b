"""Real-socket test servers on 127.0.0.1, each running in background threads.

- `scripted`: the threaded server, its per-connection API and its ledger.
- `h11server`: a correct HTTP/1.1 keep-alive handler with knobs.
- `faults`: ready-made misbehaving handlers.
"""
