"""hotline: a secure crisis-communication service.

The sans-I/O protocol core lives in :mod:`hotline.protocol`; the relay, the client library, the CLI and
the exercise engine are built on it.
"""

__version__ = "0.1.0"
