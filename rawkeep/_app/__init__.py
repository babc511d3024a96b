"""The application built on the library: the ``rawkeep`` command, its
connection story, the demo and the local lab server.

Nothing here is public API, and the library never imports this package:
``import rawkeep`` loads none of it. Only ``rawkeep.testing``, public
tooling imported by name, builds on it (the lab server, with a test's
handler as its responder). These modules import the library's modules
directly and each other only downwards:

- ``cli`` (``rawkeep URL``) uses ``options`` and ``story``, and runs ``demo``
  for ``rawkeep demo``; ``cli`` and ``demo`` both end through ``exitcodes``;
- ``demo`` uses ``story`` and ``labserver``;
- ``labserver`` (listener, threads, stop) runs a ``labconnection`` per
  connection, which asks ``labroutes`` what to answer.
"""
