"""The application built on the library: the ``rawkeep`` command, its
connection story, the demo and the local lab server.

Nothing here is public API, and the library never imports this package:
``import rawkeep`` loads none of it. These modules import the library's
modules directly and each other only downwards: ``cli`` uses ``options``,
``story`` and (for ``rawkeep demo``) ``demo``; ``demo`` uses ``labserver``
and ``story``; ``cli`` and ``demo`` both end through ``exitcodes``.
"""
