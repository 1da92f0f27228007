"""Tools for testing hotline under failure: the fault-injecting proxy (:mod:`hotline.testing.faultproxy`).

Nothing here is used by the relay or the clients; tests and developers use it to make the network lie.
"""
