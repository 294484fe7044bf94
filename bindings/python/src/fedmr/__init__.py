"""FedMR on-device SDK: the Python face of fedmr-sdk's Client.

Everything is the uniffi-generated module ``fedmr.fedmr_ffi`` (run
``bindings/generate.sh`` first); this package re-exports it.
"""

from .fedmr_ffi import *  # noqa: F401,F403
