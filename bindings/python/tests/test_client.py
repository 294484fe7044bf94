"""The whole Client API as a Python user (a researcher driving a simulation,
or an app) walks it: open, apply, record, train with progress, recommend,
preferences, export, forget_me, and each error path."""

import json
import threading

import pytest

import fedmr
from fedmr import (
    CancelToken,
    ClientConfig,
    FedmrClient,
    FedmrError,
    Interaction,
    InteractionKind,
    TrainOptions,
    TrainProgress,
)


@pytest.fixture()
def server_data():
    return fedmr.sample_server_data(120, 3)


@pytest.fixture()
def client(tmp_path, server_data):
    c = FedmrClient.open(ClientConfig(db_path=str(tmp_path / "fedmr.sqlite"), seed=5))
    assert c.apply_catalog(server_data.catalog)
    assert c.apply_model(server_data.model)
    return c


def likes(keys):
    return [
        Interaction(item_key=k, kind=InteractionKind.LIKE, timestamp_ms=t)
        for t, k in enumerate(keys)
    ]


class Recorder(TrainProgress):
    def __init__(self):
        self.epochs = []

    def on_epoch(self, epoch, epochs, loss):
        self.epochs.append((epoch, epochs, loss))


def test_walk_the_whole_api(client, server_data):
    keys = server_data.item_keys[:6]
    assert client.record_batch(likes(keys)) == 6
    client.record(Interaction(item_key="not-in-catalog", kind=InteractionKind.WEIGHTED, weight=0.5, timestamp_ms=99))
    stats = client.stats()
    assert (stats.interactions, stats.known_items, stats.unknown_items) == (7, 6, 1)

    progress = Recorder()
    report = client.train(TrainOptions(), progress, None)
    assert report.epochs_run == report.epochs_planned == len(progress.epochs) == 5
    assert [e[0] for e in progress.epochs] == [1, 2, 3, 4, 5]
    assert report.positives == 7 - 1  # the unknown item is kept, not trained on
    assert len(client.pending_uploads()) == 1
    assert client.integrity_check() is True

    top = client.recommend(10, True, None)
    assert len(top) == 10
    assert all(r.item_key not in keys for r in top)
    assert [r.score for r in top] == sorted((r.score for r in top), reverse=True)
    only = client.recommend(10, True, [server_data.item_keys[50], keys[0]])
    assert [r.item_key for r in only] == [server_data.item_keys[50]]
    assert len(client.scores()) == 120

    prefs = client.preferences()
    assert prefs.trained
    assert [e.expert for e in prefs.experts] == ["sum", "mlp", "gate"]
    assert abs(sum(e.weight for e in prefs.experts) - 1.0) < 1e-5
    assert abs(sum(m.share for m in prefs.modalities) - 1.0) < 1e-5

    # The sample server publishes no local DP: one round spends an unbounded budget.
    spent = client.privacy_spent(1e-5)
    assert (spent.rounds, spent.rounds_without_dp) == (1, 1)
    assert spent.epsilon == float("inf")

    exported = json.loads(client.export())
    assert len(exported["interactions"]) == 7
    assert exported["private_model"]["rounds_trained"] == 1

    client.forget_me()
    stats = client.stats()
    assert (stats.interactions, stats.pending_uploads, stats.rounds_trained) == (0, 0, 0)
    assert stats.model_version == 1


def test_errors_are_typed_and_change_nothing(client, server_data):
    client.record_batch(likes(server_data.item_keys[:3]))
    before = client.stats()
    with pytest.raises(FedmrError.InvalidInput):
        client.record(Interaction(item_key=" ", kind=InteractionKind.VIEW, timestamp_ms=1))
    with pytest.raises(FedmrError.InvalidInput):
        client.record(Interaction(item_key="a", kind=InteractionKind.WEIGHTED, weight=float("nan"), timestamp_ms=1))
    with pytest.raises(FedmrError.InvalidInput, match="needs a weight"):
        client.record(Interaction(item_key="a", kind=InteractionKind.WEIGHTED, timestamp_ms=1))
    with pytest.raises(FedmrError.InvalidInput, match="only for Weighted"):
        client.record(Interaction(item_key="a", kind=InteractionKind.LIKE, weight=2.0, timestamp_ms=1))
    with pytest.raises(FedmrError.InvalidInput, match="index 1: a Weighted interaction needs a weight"):
        client.record_batch([
            Interaction(item_key="a", kind=InteractionKind.LIKE, timestamp_ms=1),
            Interaction(item_key="b", kind=InteractionKind.WEIGHTED, timestamp_ms=2),
        ])
    with pytest.raises(FedmrError.InvalidMessage):
        client.apply_catalog(server_data.catalog[:-3])
    with pytest.raises(FedmrError.InvalidMessage):
        client.apply_model(b"garbage")
    with pytest.raises(FedmrError.Incompatible):
        client.apply_model(fedmr.sample_server_data(60, 3).model)
    with pytest.raises(FedmrError.UnknownItem):
        client.recommend(5, True, ["no-such-item"])
    assert client.stats() == before


def test_cancel_from_another_thread_writes_nothing(client, server_data):
    client.record_batch(likes(server_data.item_keys[:10]))
    token = CancelToken()

    class CancelAtTwo(TrainProgress):
        def on_epoch(self, epoch, epochs, loss):
            if epoch == 2:
                threading.Thread(target=token.cancel).start()
                threading.Event().wait(0.05)

    with pytest.raises(FedmrError.Cancelled):
        client.train(TrainOptions(), CancelAtTwo(), token)
    assert client.pending_uploads() == []
    report = client.train(TrainOptions(time_budget_ms=0), None, None)
    assert report.epochs_run == 1 and report.stopped_early


def test_a_raising_callback_is_a_typed_error_and_writes_nothing(client, server_data):
    client.record_batch(likes(server_data.item_keys[:10]))
    before = client.stats()

    class Raises(TrainProgress):
        def on_epoch(self, epoch, epochs, loss):
            if epoch == 2:
                raise ValueError("the app's progress bar is gone")

    with pytest.raises(FedmrError.CallbackFailed) as raised:
        client.train(TrainOptions(), Raises(), None)
    assert "progress bar is gone" in str(raised.value)
    assert client.stats() == before
    assert client.pending_uploads() == []


def test_not_ready_before_a_model(tmp_path):
    c = FedmrClient.open(ClientConfig(db_path=str(tmp_path / "empty.sqlite")))
    with pytest.raises(FedmrError.NotReady):
        c.recommend(3, True, None)
    with pytest.raises(FedmrError.NotReady):
        c.train(TrainOptions(), None, None)
    with pytest.raises(FedmrError.Storage):
        FedmrClient.open(ClientConfig(db_path=str(tmp_path / "no" / "such" / "dir.sqlite")))


def test_remote_takes_a_model_encoding(client):
    assert fedmr.Remote(base_url="http://127.0.0.1:9", token="t").model_encoding is None
    remote = fedmr.Remote(
        base_url="http://127.0.0.1:9",
        token="t",
        timeout_ms=300,
        max_attempts=1,
        model_encoding=fedmr.ModelEncoding.INT4,
    )
    assert remote.model_encoding == fedmr.ModelEncoding.INT4
    # Nothing listens there: a typed network error, the installed model kept.
    before = client.stats().model_version
    with pytest.raises(FedmrError.Network):
        client.sync(remote)
    assert client.stats().model_version == before
