#!/usr/bin/env python3
"""Measure the cost of Flower's own SecAgg+ (PyPI `flwr`) for one FL round.

What it runs: Flower's server workflow
(`flwr.server.workflow.SecAggPlusWorkflow`, its four stage methods called in
order) against N clients each running Flower's client mod
(`flwr.client.mod.secaggplus_mod`), all in ONE process. Every message between
the workflow and a client goes through Flower's own wire encoding of the
SuperLink <-> SuperNode hop (Fleet API of flwr 1.42): the message is deflated
into Flower's content-addressed objects (`Message` / `RecordDict` / records /
`Array` / `ArrayChunk`), and the receiving side inflates it again from those
bytes. No sockets: the bytes are counted, not sent.

Bytes counted per client and stage: the serialized protobuf bodies of the
Fleet API calls a SuperNode makes for one message and its reply
(PullMessages, PullObject per object, ConfirmMessageReceived, PushMessages,
PushObject per object), requests as "sent", responses as "received". The
server's totals are the sums over clients (SuperLink side of the same calls).

Times: CPU seconds (`time.process_time`, the whole single process) of
  * each client: `secaggplus_mod` per stage (minus the trivial `fit` callback),
    plus, separately, its message encode/decode ("serde");
  * the server: each `SecAggPlusWorkflow.*_stage` call minus the time spent
    in the clients and in byte accounting, plus, separately, its serde.

Not measured: network time, HTTP/gRPC/TLS/TCP framing and headers, polling of
PullMessages, heartbeats, the ServerApp <-> SuperLink hop (usually local), the
SuperNode <-> ClientApp process hop and its Context save/restore, training.

Correctness: every client sends x_i (float32, N values) with equal weight;
Flower returns the weighted mean; the script compares mean * n with sum(x_i)
and prints the error next to Flower's quantisation step.

Run:
  python3 -m venv /tmp/flwrv && /tmp/flwrv/bin/pip install flwr==1.42.0 numpy \
    && /tmp/flwrv/bin/python scripts/bench-flower-secaggplus.py \
       --clients 50,200,1000 --values 160000 --dropout 0.0 \
       --share-configs 3:2,k64 --out scripts/fixtures/flower_secaggplus.json

--share-configs takes a comma list of SecAgg+ share settings:
  "S:T"  num_shares=S, reconstruction_threshold=T exactly as passed to
         SecAggPlusWorkflow (ints, or floats = fractions, as Flower reads them);
  "kK"   K neighbours per client: num_shares=min(K+1, n),
         reconstruction_threshold=min(K, n-1)//2+1 (a FedMR-like setting).
SecAggPlusWorkflow has no default for num_shares / reconstruction_threshold;
3:2 is what Flower's own secure-aggregation example uses. Every other
parameter is left at Flower's default.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import random
import sys
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

import flwr
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.app.message.array import Array
from flwr.app.message.arraychunk import ArrayChunk
from flwr.app.message.message import remove_content_from_message
from flwr.client.mod import secaggplus_mod
from flwr.common import (
    Code,
    FitRes,
    Status,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.common.serde import message_to_proto
from flwr.compat.common import recorddict_compat as compat
from flwr.proto.fleet_pb2 import (  # pylint: disable=no-name-in-module
    PullMessagesRequest,
    PullMessagesResponse,
    PushMessagesRequest,
    PushMessagesResponse,
)
from flwr.proto.message_pb2 import (  # pylint: disable=no-name-in-module
    ConfirmMessageReceivedRequest,
    ConfirmMessageReceivedResponse,
    PullObjectRequest,
    PullObjectResponse,
    PushObjectRequest,
    PushObjectResponse,
)
from flwr.proto.node_pb2 import Node  # pylint: disable=no-name-in-module
from flwr.server import ServerConfig
from flwr.server.client_manager import SimpleClientManager
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.strategy import FedAvg
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.server.workflow.secure_aggregation.secaggplus_workflow import WorkflowState
from flwr.serverapp.grid import Grid
from flwr.supercore.inflatable.inflatable_object import (
    get_all_nested_objects,
    get_object_tree,
    no_object_id_recompute,
)
from flwr.supercore.inflatable.inflatable_utils import inflate_object_from_contents
from flwr.supercore.task_identity import TaskIdentity

STAGES = ("setup", "share_keys", "collect_masked_vectors", "unmask")
RUN_ID = 4242
NUM_EXAMPLES = 100  # every client's weight; Flower's default max_weight is 1000
MODEL_CLASSES = (ArrayRecord, Array, ArrayChunk)


# ----------------------------------------------------------------- accounting


class Clock:
    """CPU and wall seconds of a block, added to a dict under a key."""

    def __init__(self, cpu: dict, wall: dict, key: str) -> None:
        self.cpu, self.wall, self.key = cpu, wall, key

    def __enter__(self) -> "Clock":
        self.c0, self.w0 = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        self.cpu[self.key] = self.cpu.get(self.key, 0.0) + time.process_time() - self.c0
        self.wall[self.key] = self.wall.get(self.key, 0.0) + time.perf_counter() - self.w0


@dataclass
class Party:
    """Per-stage counters of one party (a client or the server)."""

    sent: dict = field(default_factory=dict)
    recv: dict = field(default_factory=dict)
    requests: dict = field(default_factory=dict)
    model_recv: dict = field(default_factory=dict)  # FitIns' global model bytes
    cpu: dict = field(default_factory=dict)
    wall: dict = field(default_factory=dict)
    serde_cpu: dict = field(default_factory=dict)
    serde_wall: dict = field(default_factory=dict)

    def add(self, counter: dict, stage: str, value: float) -> None:
        counter[stage] = counter.get(stage, 0) + value


@dataclass
class Wire:
    """A message as Flower's Fleet API carries it: head, object tree, objects."""

    msg_id: str
    head: object  # flwr.proto.message_pb2.Message without content
    tree: object  # flwr.proto.message_pb2.ObjectTree
    contents: dict  # object id -> deflated bytes
    model_ids: set  # ids of ArrayRecord/Array/ArrayChunk objects


def encode(msg: Message) -> Wire:
    """Deflate a message into Flower's objects, as HttpGrid / SuperNode do."""
    with no_object_id_recompute():
        msg_id = msg.object_id
        msg.metadata.__dict__["_message_id"] = msg_id
        objects = get_all_nested_objects(msg)
        contents = {oid: obj.deflate() for oid, obj in objects.items()}
        model_ids = {oid for oid, obj in objects.items() if isinstance(obj, MODEL_CLASSES)}
        tree = get_object_tree(msg)
    head = message_to_proto(remove_content_from_message(msg))
    return Wire(msg_id, head, tree, contents, model_ids)


def decode(wire: Wire) -> Message:
    """Inflate a message from its objects, as SuperNode / HttpGrid do."""
    msg = inflate_object_from_contents(wire.msg_id, dict(wire.contents))
    msg.metadata.__dict__["_message_id"] = wire.msg_id
    return msg


def downlink_bytes(node: Node, wire: Wire) -> tuple[int, int, int, int]:
    """(client sent, client received, requests, model bytes) to fetch a message."""
    sent = PullMessagesRequest(node=node).ByteSize()
    recv = PullMessagesResponse(
        messages_list=[wire.head], message_object_trees=[wire.tree]
    ).ByteSize()
    model = 0
    for oid, content in wire.contents.items():
        sent += PullObjectRequest(node=node, run_id=RUN_ID, object_id=oid).ByteSize()
        size = PullObjectResponse(
            object_found=True, object_available=True, object_content=content
        ).ByteSize()
        recv += size
        model += size if oid in wire.model_ids else 0
    sent += ConfirmMessageReceivedRequest(
        node=node, run_id=RUN_ID, message_object_id=wire.msg_id
    ).ByteSize()
    recv += ConfirmMessageReceivedResponse().ByteSize()
    return sent, recv, len(wire.contents) + 2, model


def uplink_bytes(node: Node, wire: Wire) -> tuple[int, int, int]:
    """(client sent, client received, requests) to push a reply."""
    session = str(uuid.uuid4())
    sent = PushMessagesRequest(
        node=node,
        messages_list=[wire.head],
        message_object_trees=[wire.tree],
        clientapp_runtime_list=[0.0],
    ).ByteSize()
    recv = PushMessagesResponse(
        objects_to_push=list(wire.contents), session_id=session
    ).ByteSize()
    for oid, content in wire.contents.items():
        sent += PushObjectRequest(
            node=node,
            run_id=RUN_ID,
            object_id=oid,
            object_content=content,
            session_id=session,
        ).ByteSize()
        recv += PushObjectResponse(stored=True).ByteSize()
    return sent, recv, len(wire.contents) + 1


# -------------------------------------------------------------------- clients


class SimClient:
    """One SuperNode: its Context, its update, Flower's secaggplus_mod."""

    def __init__(self, node_id: int, update: np.ndarray) -> None:
        self.node = Node(node_id=node_id)
        self.context = Context(RUN_ID, node_id, {}, RecordDict(), {})
        self.fitres = FitRes(
            Status(Code.OK, ""), ndarrays_to_parameters([update]), NUM_EXAMPLES, {}
        )
        self.party = Party()
        self.fit_cpu = 0.0

    def fit(self, msg: Message, _ctx: Context) -> Message:
        """The app's own train step: return the prepared update."""
        c0 = time.process_time()
        reply = Message(compat.fitres_to_recorddict(self.fitres, True), reply_to=msg)
        self.fit_cpu += time.process_time() - c0
        return reply

    def handle(self, msg: Message, stage: str) -> Message:
        """Run Flower's client mod on one message; time it without `fit`."""
        self.fit_cpu = 0.0
        with Clock(self.party.cpu, self.party.wall, stage):
            reply = secaggplus_mod(msg, self.context, self.fit)
        self.party.cpu[stage] -= self.fit_cpu
        return reply


# ----------------------------------------------------------------------- grid


class LoopbackGrid(Grid):
    """A Grid that hands each message to an in-process client, counting bytes."""

    def __init__(self, clients: dict[int, SimClient], dropped: set[int]) -> None:
        self.clients, self.dropped = clients, dropped
        self.server = Party()
        self.stage = STAGES[0]
        self.excluded_cpu = 0.0  # client work + byte accounting inside a stage
        self.excluded_wall = 0.0

    def set_run(self, run):
        raise NotImplementedError("no SuperLink run here")

    @property
    def run(self):
        raise NotImplementedError("no SuperLink run here")

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self):
        return list(self.clients)

    def push_messages(self, messages):
        raise NotImplementedError("use send_and_receive")

    def pull_messages(self, message_ids):
        raise NotImplementedError("use send_and_receive")

    def send_and_receive(self, messages, *, timeout=None):
        replies = []
        for msg in messages:
            reply = self.deliver(msg)
            if reply is not None:
                replies.append(reply)
        return replies

    def deliver(self, msg: Message) -> Message | None:
        """One round trip server -> client -> server."""
        client = self.clients[msg.metadata.dst_node_id]
        if client.node.node_id in self.dropped and self.stage in STAGES[2:]:
            return None  # dropped out after sharing keys: never answers
        srv, stage = self.server, self.stage
        with Clock(srv.serde_cpu, srv.serde_wall, stage):
            wire = encode(msg)
        c0, w0 = time.process_time(), time.perf_counter()
        self.count(client, stage, downlink_bytes(client.node, wire), down=True)
        with Clock(client.party.serde_cpu, client.party.serde_wall, stage):
            incoming = decode(wire)
        reply = client.handle(incoming, stage)
        with Clock(client.party.serde_cpu, client.party.serde_wall, stage):
            back = encode(reply)
        self.count(client, stage, uplink_bytes(client.node, back), down=False)
        self.excluded_cpu += time.process_time() - c0
        self.excluded_wall += time.perf_counter() - w0
        with Clock(srv.serde_cpu, srv.serde_wall, stage):
            return decode(back)

    def count(self, client: SimClient, stage: str, sizes: tuple, down: bool) -> None:
        """Book one Fleet API exchange on the client and the server."""
        sent, recv, requests = sizes[:3]
        cp, sp = client.party, self.server
        cp.add(cp.sent, stage, sent)
        cp.add(cp.recv, stage, recv)
        cp.add(cp.requests, stage, requests)
        sp.add(sp.recv, stage, sent)
        sp.add(sp.sent, stage, recv)
        sp.add(sp.requests, stage, requests)
        if down:
            cp.add(cp.model_recv, stage, sizes[3])


# ---------------------------------------------------------------------- round


def parse_share_config(spec: str, n: int) -> tuple[int | float, int | float]:
    """'S:T' -> (S, T) as SecAggPlusWorkflow takes them; 'kK' -> K neighbours."""
    if spec.startswith("k"):
        k = int(spec[1:])
        return min(k + 1, n), min(k, n - 1) // 2 + 1
    num = lambda s: float(s) if "." in s else int(s)  # noqa: E731
    shares, threshold = spec.split(":")
    return num(shares), num(threshold)


def make_context(grid: LoopbackGrid, n_values: int, n: int) -> LegacyContext:
    """A LegacyContext whose FedAvg samples every client, round 1."""
    init = ndarrays_to_parameters([np.zeros(n_values, dtype=np.float32)])
    strategy = FedAvg(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=n,
        min_available_clients=n,
        initial_parameters=init,
    )
    manager = SimpleClientManager()
    for nid in grid.clients:
        manager.register(GridClientProxy(nid, grid, RUN_ID))
    base = Context(RUN_ID, SUPERLINK_NODE_ID, {}, RecordDict(), {})
    ctx = LegacyContext(base, ServerConfig(num_rounds=1), strategy, manager)
    ctx.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord(
        {WorkflowKey.CURRENT_ROUND: 1}
    )
    ctx.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(
        init, keep_input=True
    )
    return ctx


def run_stages(workflow, grid: LoopbackGrid, ctx: LegacyContext) -> WorkflowState:
    """Call the four stage methods like SecAggPlusWorkflow.__call__, timed."""
    state = WorkflowState()
    steps = (
        workflow.setup_stage,
        workflow.share_keys_stage,
        workflow.collect_masked_vectors_stage,
        workflow.unmask_stage,
    )
    srv = grid.server
    for stage, step in zip(STAGES, steps):
        grid.stage, grid.excluded_cpu, grid.excluded_wall = stage, 0.0, 0.0
        c0, w0 = time.process_time(), time.perf_counter()
        ok = step(grid, ctx, state)
        srv.cpu[stage] = time.process_time() - c0 - grid.excluded_cpu - srv.serde_cpu.get(stage, 0)
        srv.wall[stage] = time.perf_counter() - w0 - grid.excluded_wall - srv.serde_wall.get(stage, 0)
        if not ok:
            raise RuntimeError(f"SecAgg+ halted in stage {stage}")
    return state


def check_result(ctx: LegacyContext, updates: np.ndarray, survivors: list[int],
                 workflow) -> dict:
    """Compare Flower's unmasked mean * n with the float64 sum of the inputs."""
    params = compat.arrayrecord_to_parameters(
        ctx.state.array_records[MAIN_PARAMS_RECORD], keep_input=True
    )
    mean = parameters_to_ndarrays(params)[0].astype(np.float64)
    want = updates[survivors].astype(np.float64).sum(axis=0)
    got = mean * len(survivors)
    err = np.abs(got - want)
    q_ratio = round(NUM_EXAMPLES / workflow.max_weight * workflow.quantization_range)
    step = 2 * workflow.clipping_range / workflow.quantization_range
    step_in_x = step / (q_ratio / workflow.quantization_range)
    return {
        "sum_max_abs_error": float(err.max()),
        "sum_rms_error": float(np.sqrt((err**2).mean())),
        "quantisation_step_per_client": step_in_x,
        "worst_case_sum_error": step_in_x * len(survivors),
        "ok": bool(err.max() <= step_in_x * len(survivors)),
    }


def summarise(grid: LoopbackGrid, clients: list[SimClient], n_values: int,
              spec: str, workflow, dropped: set, check: dict, wall: float) -> dict:
    """One cohort's JSON entry."""
    live = [c for c in clients if c.node.node_id not in dropped]

    def mean(get, stage=None):
        vals = [get(c.party).get(stage, 0) if stage else sum(get(c.party).values())
                for c in live]
        return float(np.mean(vals))

    per_stage = lambda get: {s: mean(get, s) for s in STAGES}  # noqa: E731
    srv = grid.server
    return {
        "share_config": spec,
        "clients": len(clients),
        "values": n_values,
        "num_shares": workflow._bench_num_shares,
        "threshold": workflow._bench_threshold,
        "dropout_clients": len(dropped),
        "client_bytes_sent_mean": mean(lambda p: p.sent),
        "client_bytes_received_mean": mean(lambda p: p.recv),
        "client_bytes_received_global_model_mean": mean(lambda p: p.model_recv),
        "client_bytes_sent_per_stage_mean": per_stage(lambda p: p.sent),
        "client_bytes_received_per_stage_mean": per_stage(lambda p: p.recv),
        "client_requests_mean": mean(lambda p: p.requests),
        "server_bytes_sent": int(sum(srv.sent.values())),
        "server_bytes_received": int(sum(srv.recv.values())),
        "server_bytes_sent_per_stage": {s: int(srv.sent.get(s, 0)) for s in STAGES},
        "server_bytes_received_per_stage": {s: int(srv.recv.get(s, 0)) for s in STAGES},
        "client_cpu_s_per_stage_mean": per_stage(lambda p: p.cpu),
        "client_cpu_s_mean": mean(lambda p: p.cpu),
        "client_serde_cpu_s_per_stage_mean": per_stage(lambda p: p.serde_cpu),
        "client_serde_cpu_s_mean": mean(lambda p: p.serde_cpu),
        "server_cpu_s_per_stage": {s: srv.cpu.get(s, 0.0) for s in STAGES},
        "server_cpu_s": float(sum(srv.cpu.values())),
        "server_wall_s_per_stage": {s: srv.wall.get(s, 0.0) for s in STAGES},
        "server_serde_cpu_s_per_stage": {s: srv.serde_cpu.get(s, 0.0) for s in STAGES},
        "server_serde_cpu_s": float(sum(srv.serde_cpu.values())),
        "correctness": check,
        "run_wall_s": wall,
    }


def run_cohort(n: int, n_values: int, dropout: float, spec: str, seed: int) -> dict:
    """One full SecAgg+ round for n clients."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    updates = rng.normal(0.0, 0.05, size=(n, n_values)).astype(np.float32)
    ids = [10_000 + i for i in range(n)]
    clients = [SimClient(nid, updates[i]) for i, nid in enumerate(ids)]
    random.seed(seed)  # the workflow shuffles node ids with `random`
    dropped = set(random.sample(ids, round(dropout * n)))
    grid = LoopbackGrid({c.node.node_id: c for c in clients}, dropped)
    num_shares, threshold = parse_share_config(spec, n)
    workflow = SecAggPlusWorkflow(num_shares, threshold)
    ctx = make_context(grid, n_values, n)
    state = run_stages(workflow, grid, ctx)
    workflow._bench_num_shares, workflow._bench_threshold = state.num_shares, state.threshold
    survivors = [i for i, nid in enumerate(ids) if nid not in dropped]
    check = check_result(ctx, updates, survivors, workflow)
    return summarise(grid, clients, n_values, spec, workflow, dropped, check,
                     time.perf_counter() - t0)


# --------------------------------------------------------------------- output


def kib(x: float) -> str:
    return f"{x / 1024:,.1f}"


def table(rows: list[dict]) -> str:
    """Markdown table of the headline numbers."""
    head = ("| shares | clients | values | S/T | client sent KiB | client recv KiB "
            "(model) | server sent MiB | server recv MiB | client CPU s "
            "(+serde) | server CPU s (+serde) | sum max err | run wall s |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        lines.append(
            f"| {r['share_config']} | {r['clients']} | {r['values']} | "
            f"{r['num_shares']}/{r['threshold']} | {kib(r['client_bytes_sent_mean'])} | "
            f"{kib(r['client_bytes_received_mean'])} "
            f"({kib(r['client_bytes_received_global_model_mean'])}) | "
            f"{r['server_bytes_sent'] / 2**20:,.1f} | "
            f"{r['server_bytes_received'] / 2**20:,.1f} | "
            f"{r['client_cpu_s_mean']:.3f} (+{r['client_serde_cpu_s_mean']:.3f}) | "
            f"{r['server_cpu_s']:.2f} (+{r['server_serde_cpu_s']:.2f}) | "
            f"{r['correctness']['sum_max_abs_error']:.2e} | {r['run_wall_s']:.1f} |"
        )
    return "\n".join(lines)


def stage_table(rows: list[dict]) -> str:
    """Markdown table of per-stage CPU seconds."""
    lines = ["| shares | clients | party | " + " | ".join(STAGES) + " |",
             "|" + "---|" * (3 + len(STAGES))]
    for r in rows:
        for party, key in (("client (mean)", "client_cpu_s_per_stage_mean"),
                           ("server", "server_cpu_s_per_stage")):
            cells = " | ".join(f"{r[key][s]:.4f}" for s in STAGES)
            lines.append(f"| {r['share_config']} | {r['clients']} | {party} | {cells} |")
    return "\n".join(lines)


DESCRIPTION = (
    "In-process: Flower's SecAggPlusWorkflow stage methods (server) and "
    "secaggplus_mod (clients) run in one Python process, one client at a time; "
    "each message is deflated/inflated with Flower's own object encoding and "
    "its bytes counted as the protobuf bodies of the Fleet API calls a SuperNode "
    "makes (flwr 1.42 posts these over HTTP: PullMessages, PullObject per object, "
    "ConfirmMessageReceived, PushMessages, PushObject per object). Share configs: "
    "'S:T' = SecAggPlusWorkflow(num_shares=S, reconstruction_threshold=T); 'kK' = "
    "K neighbours: num_shares=min(K+1,n), threshold=min(K,n-1)//2+1. Client bytes are means over the clients that finished; server "
    "bytes are the SuperLink side totals. Stage-2 client downloads include the "
    "FitIns global model (N float32), reported separately as "
    "client_bytes_received_global_model_mean. CPU = time.process_time; client CPU "
    "excludes the app's fit callback; serde (encode/decode of Flower messages) "
    "is reported separately for both parties."
)
NOT_MEASURED = (
    "No real network: no latency, no HTTP/gRPC/TLS/TCP framing or headers, no "
    "PullMessages polling or heartbeats, no ServerApp<->SuperLink hop, no "
    "SuperNode<->ClientApp process hop or Context persistence, no concurrency "
    "(clients run one after another on one core), no training."
)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", default="50,200,1000")
    p.add_argument("--values", type=int, default=160_000)
    p.add_argument("--dropout", type=float, default=0.0,
                   help="fraction of clients that drop after sharing keys")
    p.add_argument("--share-configs", default="3:2")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    logging.getLogger("flwr").setLevel(logging.WARNING)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = (
        RUN_ID, SUPERLINK_NODE_ID, 1)
    rows = []
    for spec in args.share_configs.split(","):
        for n in (int(x) for x in args.clients.split(",")):
            row = run_cohort(n, args.values, args.dropout, spec, args.seed)
            c = row["correctness"]
            print(f"[{spec} n={n} N={args.values}] done in {row['run_wall_s']:.1f}s; "
                  f"sum max |err| {c['sum_max_abs_error']:.3e} (rms "
                  f"{c['sum_rms_error']:.3e}, bound {c['worst_case_sum_error']:.3e}, "
                  f"ok={c['ok']})", flush=True)
            rows.append(row)
    print(table(rows))
    print()
    print(stage_table(rows))
    if args.out:
        write_json(args, rows)


def write_json(args: argparse.Namespace, rows: list[dict]) -> None:
    doc = {
        "flwr_version": flwr.__version__,
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "command": " ".join(sys.argv),
        "what_was_run": DESCRIPTION,
        "not_measured": NOT_MEASURED,
        "flower_defaults_used": {
            "clipping_range": 8.0,
            "quantization_range": 2**22,
            "modulus_range": 2**32,
            "max_weight": 1000.0,
            "client_weight_num_examples": NUM_EXAMPLES,
            "note": "SecAggPlusWorkflow has no default num_shares / "
                    "reconstruction_threshold; '3:2' is Flower's example setting",
        },
        "dropout": args.dropout,
        "runs": rows,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
