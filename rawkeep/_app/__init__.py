"""The application built on the library: the ``rawkeep`` command, its
connection story, the demo and the local lab server.

Nothing here is public API, and the library never imports this package:
``import rawkeep`` loads none of it. Modules here import the library's
modules directly, and each other only downwards (``cli`` -> ``demo`` ->
``labserver``, ``story``; all -> ``exitcodes``).
"""
