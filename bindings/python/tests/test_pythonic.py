"""What a Python user expects of the package beyond the raw bindings:
default arguments, plain enum values, records that print their fields, a
context-managed client, docstrings everywhere, a platform wheel."""

import enum
import importlib.metadata
import inspect

import pytest

import fedmr
from fedmr import ClientConfig, FedmrClient, Interaction, InteractionKind
from fedmr._pythonic import record_classes


@pytest.fixture()
def ready(tmp_path):
    data = fedmr.sample_server_data(120, 3)
    client = FedmrClient.open(ClientConfig(db_path=str(tmp_path / "fedmr.sqlite"), seed=5))
    client.apply_catalog(data.catalog)
    client.apply_model(data.model)
    for t, key in enumerate(data.item_keys[:5]):
        client.record(Interaction(item_key=key, kind=InteractionKind.LIKE, timestamp_ms=t))
    return client, data


def test_train_and_recommend_work_with_their_defaults(ready):
    client, data = ready
    report = client.train()
    assert report.epochs_run == report.epochs_planned
    top = client.recommend(10)
    assert len(top) == 10
    # exclude_seen defaults to true, as in Rust's RecommendOptions::default().
    assert not {r.item_key for r in top} & set(data.item_keys[:5])


def test_enum_values_are_plain_enum_members():
    assert isinstance(InteractionKind.LIKE, enum.Enum)
    assert InteractionKind["CLICK"] is InteractionKind.CLICK
    assert {k.name for k in InteractionKind} == {"VIEW", "CLICK", "LIKE", "PURCHASE", "DISLIKE", "WEIGHTED"}


def test_records_print_their_fields(ready):
    client, _ = ready
    top = client.recommend(2)
    text = repr(top)
    assert text.startswith("[Recommendation(item_key='item-"), text
    assert "score=" in text
    assert "interactions=5" in repr(client.stats())
    names = {cls.__name__ for cls in record_classes(fedmr._generated)}
    assert {"Recommendation", "Stats", "TrainReport", "Interaction", "Remote", "UploadReport"} <= names
    for cls in record_classes(fedmr._generated):
        assert "__repr__" in vars(cls), cls


def test_the_client_is_a_context_manager_that_closes_it(tmp_path):
    db = tmp_path / "fedmr.sqlite"
    with FedmrClient.open(ClientConfig(db_path=str(db))) as client:
        client.record(Interaction(item_key="a", kind=InteractionKind.VIEW, timestamp_ms=1))
        assert client.stats().interactions == 1
    with pytest.raises(ValueError, match="closed"):
        client.stats()
    client.close()  # closing twice is harmless
    # The native client is gone: SQLite removed its WAL with the last connection.
    assert not (tmp_path / "fedmr.sqlite-wal").exists()
    with FedmrClient.open(ClientConfig(db_path=str(db))) as again:
        assert again.stats().interactions == 1


def _public_members(cls):
    for name, member in vars(cls).items():
        if name.startswith("_") or not (inspect.isfunction(member) or isinstance(member, classmethod)):
            continue
        yield name, member


def test_every_public_class_and_method_has_a_docstring():
    undocumented = []
    for name in fedmr.__all__:
        obj = getattr(fedmr, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if name.endswith("Protocol"):
            continue  # uniffi's typing protocols mirror the documented classes
        if not (obj.__doc__ or "").strip():
            undocumented.append(name)
        if inspect.isclass(obj) and not issubclass(obj, enum.Enum):
            for method, member in _public_members(obj):
                function = member.__func__ if isinstance(member, classmethod) else member
                if not (function.__doc__ or "").strip():
                    undocumented.append(f"{name}.{method}")
    assert not undocumented, f"no docstring: {undocumented}"


def test_the_installed_package_is_a_platform_wheel():
    wheel = importlib.metadata.distribution("fedmr").read_text("WHEEL")
    tags = [line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:")]
    assert tags, wheel
    assert all(not tag.endswith("-any") for tag in tags), tags
