"""A phone's round in a few lines: sync the server's catalog and model,
record what the user liked, train on the device, recommend, upload.

    python walkthrough.py <server url> <token> [database path]
"""

import os
import sys
import tempfile
import time

import fedmr


def main(url, token, db):
    remote = fedmr.Remote(base_url=url, token=token)
    with fedmr.FedmrClient.open(fedmr.ClientConfig(db_path=db)) as client:
        print(client.sync(remote))
        # Before any training the global model ranks for everyone alike.
        liked = [r.item_key for r in client.recommend(3)]
        now = int(time.time() * 1000)
        for i, key in enumerate(liked):
            client.record(fedmr.Interaction(item_key=key, kind=fedmr.InteractionKind.LIKE, timestamp_ms=now + i))
        report = client.train()
        print(f"trained {report.epochs_run} epochs in {report.duration_ms} ms, losses {report.losses}")
        for recommendation in client.recommend(5):
            print(recommendation)
        print(client.upload(remote))
        print(client.stats())


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    database = sys.argv[3] if len(sys.argv) > 3 else os.path.join(tempfile.mkdtemp(), "fedmr.sqlite")
    main(sys.argv[1], sys.argv[2], database)
