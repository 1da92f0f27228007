"""The hotline relay: a FastAPI service that stores and forwards envelopes and receipts.

``create_app(settings)`` in :mod:`hotline.relay.app` builds the whole service; nothing is created at
import time. The relay never holds a key that can read or forge a message: it checks signatures with
public keys, signs its own receipts and tree heads, and keeps a tamper-evident audit log.
"""
