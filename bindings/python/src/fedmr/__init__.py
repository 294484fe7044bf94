"""FedMR on-device SDK: federated multimodal recommendation for Python.

The API is fedmr-sdk's ``Client`` as uniffi generates it (``FedmrClient``,
its records and ``FedmrError``), with what Python users expect on top:
records that print their fields and a client that works as a context
manager::

    import fedmr

    with fedmr.FedmrClient.open(fedmr.ClientConfig(db_path="fedmr.sqlite")) as client:
        client.sync(fedmr.Remote(base_url="http://127.0.0.1:8750", token=token))
        client.record(fedmr.Interaction(item_key="item-3", kind=fedmr.InteractionKind.LIKE,
                                        timestamp_ms=1_700_000_000_000))
        client.train()
        print(client.recommend(10))
        client.upload(fedmr.Remote(base_url="http://127.0.0.1:8750", token=token))

Every call blocks until done (``train`` for seconds, ``sync``/``upload`` for
network round trips); a client may be shared between threads.
"""

from .fedmr_ffi import *  # noqa: F401,F403  (the generated API)
from .fedmr_ffi import fedmr_ffi as _generated
from ._pythonic import add_record_reprs, document_uniffi_classes, make_closeable

__all__ = list(_generated.__all__)

add_record_reprs(_generated)
make_closeable(_generated.FedmrClient, _generated)
document_uniffi_classes(_generated)
