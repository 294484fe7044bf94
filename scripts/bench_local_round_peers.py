#!/usr/bin/env python3
"""Peer timings for the local-round bench: the same round in JAX (jit) and PyTorch (eager).

What it runs: exactly the round that `sdk-core/core/benches/local_round.rs` times in
its "FedAvg + MFFM round" line (FedAvg backbone -- FCF is the same model -- with
`FusionMode::full()`), i.e. `train::train_local` on one heavy user:
  * catalog: 10,000 items, two modalities of 512-d standard-normal features;
  * user: 200 distinct random positives; 1 negative per positive, so each epoch is
    ONE full batch of 200 positives + 200 negatives;
  * model: d = 64, init_std 0.1; plain SGD, lr 0.05 for everything (item_lr None);
    5 epochs.
Per round, as in Rust (timed from plan to upload):
  1. plan (`train/plan.rs`): all 5 epochs' negatives drawn up front, uniformly WITH
     replacement from the items that are not positives (a fresh set per epoch);
     touched = sorted distinct union of positives and every negative; each epoch's
     batch as local row positions (positives first, then that epoch's negatives);
  2. a local copy of the touched item-ID rows and of the dense parameters
     (`LocalCopy::new`); a fresh private state (head + router, seed 3 every round,
     `PrivateState::new(&config, &global, 3)` is inside the Rust timed closure);
  3. 5 times: gather the batch's ID rows from the touched copy and its feature
     rows from the catalog (Rust keeps the positives' feature rows from the
     first epoch and copies only the negatives' rows after it; the peers
     gather the whole batch),
     forward, mean BCE, exact gradient, one SGD step on dense, user and touched rows
     (the row gradient is scattered into a touched-size zero matrix);
  4. finite check of everything trained; the upload = change of the dense parameters
     (flattened in wire order) and change of the touched rows.

The model (`model/{mffm,router,head,stack}.rs`, FEDMR.md "Model"):
  z_id = LN(e_i)                       (no projection: the ID table is d wide)
  z_m  = LN(x_m W_m + b_m)             W_m: 512 x 64, two modalities
  Sum  = z_id + z_1 + z_2
  MLP  = LN(ReLU([z_id|z_1|z_2] W1 + b1) W2 + b2)          W1: 192x128, W2: 128x64
  Gate = LN([s(z_k Wg_k + bg_k) * z_k]_k Wf + bf)         Wg_k: 64x64, Wf: 192x64
  c    = [mean over the 200 positive rows of Sum | of MLP | of Gate]   (192)
  w    = softmax(ReLU(c Wr1 + br1) Wr2 + br2)              Wr1: 192x64, Wr2: 64x3
  v    = w_1 Sum + w_2 MLP + w_3 Gate
  s    = v . theta + b                 linear head, theta in R^64, b scalar
  loss = mean BCE-with-logits over the 400 samples (labels 1 for positives)
Every LayerNorm has a learned gamma/beta (init 1/0), eps 1e-5, biased variance.
Linears are Xavier-uniform with zero bias (as `Linear::new`); the item table and
theta are normal(0, 0.1), the head bias 0 (as `GlobalModel::new`/`LinearHead::new`).

Judgement calls about the Rust model (read from the code, not guessed):
  * LayerNorms: learned affine (gamma, beta are trained global parameters).
  * Router context: the mean over the batch's positive rows (the first 200) of each
    expert's view, recomputed every epoch from the current views; gradient DOES flow
    through it into the views (stack.rs adds dL/dc / P to the positives' view
    gradients), so autodiff through the mean is the same computation.
  * ID path: LN(e_i) with no projection (the table is d = 64 wide).
  * Head: linear, s = v.theta + b (theta is the user embedding); private, trained.
  * Loss: mean (not sum) BCE on logits over the whole 400-sample batch.
  * One SGD step per epoch on all of it (dense fusion params, head, router, touched
    ID rows), lr 0.05; the reported loss of an epoch is before its step.
  * Projections get parameter gradients only (features are frozen; Rust skips the
    input-gradient product, and here the features do not require grad either).
  * Negatives are redrawn per epoch (5 x 200), all drawn in the plan, before training.
  * The upload's row part is trained_row - global_row for every touched row; the
    dense part is one flat vector of (trained - global) in wire order.

Where the peers cannot be identical to Rust (and what was done):
  * JAX needs static shapes: the touched set (~1,150 rows, it varies per round) is
    padded to its maximum 200 + 5*200 = 1,200 rows with copies of the last touched
    id; the padded rows get no gradient and are cut from the upload (they cost
    ~4% more ID rows, 64 floats each, a small part of the round).
  * The host-side plan (negative sampling, np.unique, searchsorted) runs in numpy
    for both peers: the same O(log |positives|) complement mapping as
    `sample_negatives`, but a different random generator than fedmr's `Rng`.
  * Rust computes the BCE sum in f64; the peers in f32.
  * JAX: the whole round (gathers, 5 epochs of forward+grad+SGD, upload deltas,
    finite check) is one jit-compiled function, the epochs unrolled; plan and the
    fresh user state are made on the host per round and passed in. Compilation is
    excluded (one warm-up round, like median_secs' untimed first call).
  * PyTorch: eager, autograd (torch.autograd.grad), float32; SGD is p.add_(g,
    alpha=-lr) under no_grad (what torch.optim.SGD does without momentum).
  * Not mirrored: `protect` with `Protection::none()` (a no-op) and the copying of
    the new private state into `state` (a move in Rust).

Measuring: each peer runs in its own child process (so the other framework's
runtime is not loaded). Per peer: one untimed round, then the median of --repeats
(15, as `median_secs(15, ..)`) rounds' wall time, the median of their process CPU
time (time.process_time), and a same-process baseline, one 400x512 . 512x64 f32
matrix product (median of 200, one untimed first), so "round / one projection" is
comparable with the Rust bench's "ratio MFFM / one projection". Rust's median is
t[n/2] of the sorted times; so is this one.

Single thread: the script sets, before importing either framework,
XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
OMP_NUM_THREADS=MKL_NUM_THREADS=OPENBLAS_NUM_THREADS=1, and calls
torch.set_num_threads(1), torch.set_num_interop_threads(1). XLA's CPU runtime may
still start helper threads, so pin the whole run to one core as the Rust bench is:

  taskset -c 1 target/peer-venv/bin/python scripts/bench_local_round_peers.py
  taskset -c 1 target/peer-venv/bin/python scripts/bench_local_round_peers.py --json
  target/peer-venv/bin/python scripts/bench_local_round_peers.py --check

and compare with `taskset -c 1 cargo bench -p fedmr-core --bench local_round`
(scripts/bench-local-round-vs-peers does all of it, in turns, and prints ratios).

Environment (PyPI only):
  python3 -m venv target/peer-venv
  target/peer-venv/bin/pip install -r scripts/bench-local-round-peers-requirements.txt

Options: --peers jax,torch (default both; a peer whose import fails is skipped
with a message), --repeats N (default 15), --json (one JSON object per peer:
name, round_ms_wall, round_ms_cpu, matmul_ms, ratio_round_over_matmul, versions,
and a few extras), --check (JAX and PyTorch on the same inputs -- same init, same
plan -- must give the same loss trajectory and upload within f32 tolerance).
"""

import os

# Before any framework is imported.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
).strip()
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

ITEMS = 10_000
POSITIVES = 200
FEATURE_DIM = 512
MODALITIES = 2
DIM = 64
EPOCHS = 5
NEGATIVES_PER_POSITIVE = 1
LR = 0.05
INIT_STD = 0.1
LN_EPS = 1e-5
USER_SEED = 3  # PrivateState::new(&config, &global, 3)
INPUTS = 1 + MODALITIES  # ID embedding first, then each modality
EXPERTS = 3  # Sum, MLP, Gate
PER_EPOCH = POSITIVES * NEGATIVES_PER_POSITIVE
BATCH = POSITIVES + PER_EPOCH
MAX_TOUCHED = POSITIVES + EPOCHS * PER_EPOCH

# The dense (global, non-table) parameters in Rust's wire order (impl_tensors! on
# Mffm: projections, norms, mlp, gate; Linear {w, b}; LayerNorm {gamma, beta}).
DENSE_SHAPES = []
for _m in range(MODALITIES):
    DENSE_SHAPES += [(f"proj{_m}.w", (FEATURE_DIM, DIM)), (f"proj{_m}.b", (DIM,))]
for _k in range(INPUTS):
    DENSE_SHAPES += [(f"norm{_k}.g", (DIM,)), (f"norm{_k}.b", (DIM,))]
DENSE_SHAPES += [
    ("mlp.hidden.w", (INPUTS * DIM, 2 * DIM)),
    ("mlp.hidden.b", (2 * DIM,)),
    ("mlp.out.w", (2 * DIM, DIM)),
    ("mlp.out.b", (DIM,)),
    ("mlp.norm.g", (DIM,)),
    ("mlp.norm.b", (DIM,)),
]
for _k in range(INPUTS):
    DENSE_SHAPES += [(f"gate.g{_k}.w", (DIM, DIM)), (f"gate.g{_k}.b", (DIM,))]
DENSE_SHAPES += [
    ("gate.out.w", (INPUTS * DIM, DIM)),
    ("gate.out.b", (DIM,)),
    ("gate.norm.g", (DIM,)),
    ("gate.norm.b", (DIM,)),
]
DENSE_NAMES = [n for n, _ in DENSE_SHAPES]
USER_NAMES = ["head.theta", "head.bias", "router.hidden.w", "router.hidden.b", "router.out.w", "router.out.b"]


# ---------------------------------------------------------------- shared setup


def xavier(rng, fan_in, fan_out):
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    return ((rng.random((fan_in, fan_out)) * 2.0 - 1.0) * bound).astype(np.float32)


def make_data():
    """Catalog, positives and matmul operands (outside the timed region, as in Rust)."""
    rng = np.random.default_rng(42)
    features = [rng.standard_normal((ITEMS, FEATURE_DIM), dtype=np.float32) for _ in range(MODALITIES)]
    positives = np.sort(rng.permutation(ITEMS)[:POSITIVES]).astype(np.int64)
    a = rng.standard_normal((BATCH, FEATURE_DIM), dtype=np.float32)
    b = rng.standard_normal((FEATURE_DIM, DIM), dtype=np.float32)
    return features, positives, a, b


def make_global(seed=1):
    """GlobalModel::new: item table normal * init_std, Xavier linears, LN 1/0."""
    rng = np.random.default_rng(seed)
    items = (rng.standard_normal((ITEMS, DIM)) * INIT_STD).astype(np.float32)
    dense = {}
    for name, shape in DENSE_SHAPES:
        if name.endswith(".w"):
            dense[name] = xavier(rng, *shape)
        elif name.endswith(".g"):
            dense[name] = np.ones(shape, np.float32)
        else:
            dense[name] = np.zeros(shape, np.float32)
    return items, dense


def make_user(seed=USER_SEED):
    """PrivateState::new: linear head theta ~ normal * init_std, bias 0; router."""
    rng = np.random.default_rng(seed)
    return {
        "head.theta": (rng.standard_normal(DIM) * INIT_STD).astype(np.float32),
        "head.bias": np.zeros(1, np.float32),
        "router.hidden.w": xavier(rng, EXPERTS * DIM, DIM),
        "router.hidden.b": np.zeros(DIM, np.float32),
        "router.out.w": xavier(rng, DIM, EXPERTS),
        "router.out.b": np.zeros(EXPERTS, np.float32),
    }


class Plan:
    """plan_round: every epoch's negatives, the touched rows, the local batches."""

    def __init__(self, positives, seed):
        rng = np.random.default_rng(seed)
        seen = positives  # sorted, distinct
        free = ITEMS - len(seen)
        # k-th unseen item = k + #{j : seen[j] - j <= k}  (exact, O(log |seen|)).
        unseen_below = seen - np.arange(len(seen))
        k = rng.integers(0, free, size=(EPOCHS, PER_EPOCH))
        self.negatives = k + np.searchsorted(unseen_below, k, side="right")
        self.touched = np.unique(np.concatenate([seen, self.negatives.ravel()]))
        epoch_ids = np.concatenate([np.broadcast_to(seen, (EPOCHS, len(seen))), self.negatives], axis=1)
        self.batches = np.searchsorted(self.touched, epoch_ids)  # EPOCHS x BATCH local rows
        self.positives = seen


def median(xs):
    return sorted(xs)[len(xs) // 2]  # median_secs: t[runs / 2]


# ---------------------------------------------------------------- the model, once


def forward_loss(ops, d, u, rows, feats, batch, labels, feat_ids):
    """Mean BCE of one epoch's batch; `rows` is the touched copy (`batch`
    indexes it), `feats` the whole catalog (`feat_ids` indexes it)."""
    id_rows = ops.take(rows, batch)
    x = [ops.take(f, feat_ids) for f in feats]
    z = [ops.ln(id_rows, d["norm0.g"], d["norm0.b"])]
    for m in range(MODALITIES):
        z.append(ops.ln(ops.linear(x[m], d[f"proj{m}.w"], d[f"proj{m}.b"]), d[f"norm{m + 1}.g"], d[f"norm{m + 1}.b"]))
    # Sum expert
    v_sum = z[0]
    for zk in z[1:]:
        v_sum = v_sum + zk
    # MLP expert
    hidden = ops.relu(ops.linear(ops.cat(z), d["mlp.hidden.w"], d["mlp.hidden.b"]))
    v_mlp = ops.ln(ops.linear(hidden, d["mlp.out.w"], d["mlp.out.b"]), d["mlp.norm.g"], d["mlp.norm.b"])
    # Gate expert: gate times feature
    gated = [ops.sigmoid(ops.linear(zk, d[f"gate.g{k}.w"], d[f"gate.g{k}.b"])) * zk for k, zk in enumerate(z)]
    v_gate = ops.ln(ops.linear(ops.cat(gated), d["gate.out.w"], d["gate.out.b"]), d["gate.norm.g"], d["gate.norm.b"])
    views = [v_sum, v_mlp, v_gate]
    # Router on the positives' mean views (gradient flows through the context).
    context = ops.cat([v[:POSITIVES].mean(0)[None] for v in views])  # 1 x 3d
    r_hidden = ops.relu(ops.linear(context, u["router.hidden.w"], u["router.hidden.b"]))
    w = ops.softmax(ops.linear(r_hidden, u["router.out.w"], u["router.out.b"]))[0]
    mixed = w[0] * v_sum + w[1] * v_mlp + w[2] * v_gate
    scores = mixed @ u["head.theta"] + u["head.bias"]
    return ops.bce(scores, labels)


def labels_np():
    return np.concatenate([np.ones(POSITIVES, np.float32), np.zeros(PER_EPOCH, np.float32)])


# ---------------------------------------------------------------- JAX


class JaxPeer:
    name = "jax"

    def __init__(self, features, items, dense):
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp

        class Ops:
            @staticmethod
            def take(a, idx):
                return a[idx]

            @staticmethod
            def linear(x, w, b):
                return x @ w + b

            @staticmethod
            def ln(x, g, b):
                mu = x.mean(-1, keepdims=True)
                xc = x - mu
                var = (xc * xc).mean(-1, keepdims=True)
                return xc * jax.lax.rsqrt(var + LN_EPS) * g + b

            relu = staticmethod(jax.nn.relu)
            sigmoid = staticmethod(jax.nn.sigmoid)

            @staticmethod
            def softmax(x):
                return jax.nn.softmax(x, axis=-1)

            @staticmethod
            def cat(xs):
                return jnp.concatenate(xs, axis=1)

            @staticmethod
            def bce(s, y):
                return jnp.mean(jnp.maximum(s, 0.0) - s * y + jnp.log1p(jnp.exp(-jnp.abs(s))))

        labels = jnp.asarray(labels_np())
        grad_fn = jax.value_and_grad(
            lambda d, u, rows, feats, batch, ids: forward_loss(Ops, d, u, rows, feats, batch, labels, ids),
            argnums=(0, 1, 2),
        )

        def round_fn(items, feats, dense, user, touched, batches):
            rows0 = items[touched]
            d, u, rows = dense, user, rows0
            losses = []
            for e in range(EPOCHS):  # unrolled: EPOCHS is static
                loss, (gd, gu, grows) = grad_fn(d, u, rows, feats, batches[e], touched[batches[e]])
                d = {n: d[n] - LR * gd[n] for n in d}
                u = {n: u[n] - LR * gu[n] for n in u}
                rows = rows - LR * grows
                losses.append(loss)
            finite = jnp.all(jnp.isfinite(rows))
            for p in list(d.values()) + list(u.values()):
                finite = finite & jnp.all(jnp.isfinite(p))
            dense_delta = jnp.concatenate([(d[n] - dense[n]).ravel() for n in DENSE_NAMES])
            return jnp.stack(losses), rows - rows0, dense_delta, u, finite

        self.round_jit = jax.jit(round_fn)
        self.items = jax.device_put(items)
        self.feats = [jax.device_put(f) for f in features]
        self.dense = {n: jax.device_put(v) for n, v in dense.items()}
        self.matmul_jit = jax.jit(lambda a, b: a @ b)

    def versions(self):
        import jaxlib

        return {"jax": self.jax.__version__, "jaxlib": jaxlib.__version__, "numpy": np.__version__}

    def round(self, positives, seed, user_np=None):
        plan = Plan(positives, seed)
        user = make_user() if user_np is None else user_np
        n = len(plan.touched)
        touched = np.empty(MAX_TOUCHED, np.int32)
        touched[:n] = plan.touched
        touched[n:] = plan.touched[-1]
        out = self.round_jit(self.items, self.feats, self.dense, user, touched, plan.batches.astype(np.int32))
        losses, row_delta, dense_delta, new_user, finite = self.jax.block_until_ready(out)
        if not bool(finite):
            raise FloatingPointError("diverged")
        return {
            "plan": plan,
            "losses": np.asarray(losses),
            "row_ids": plan.touched,
            "row_delta": np.asarray(row_delta)[:n],
            "dense_delta": np.asarray(dense_delta),
            "user": new_user,
        }

    def matmul(self, a, b):
        a, b = self.jax.device_put(a), self.jax.device_put(b)
        return lambda: self.matmul_jit(a, b).block_until_ready()


# ---------------------------------------------------------------- PyTorch


class TorchPeer:
    name = "torch"

    def __init__(self, features, items, dense):
        import torch
        import torch.nn.functional as F

        torch.set_num_threads(1)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass  # already set in this process
        self.torch = torch

        class Ops:
            @staticmethod
            def take(a, idx):
                return a.index_select(0, idx)

            @staticmethod
            def linear(x, w, b):
                return torch.addmm(b, x, w)

            @staticmethod
            def ln(x, g, b):
                return F.layer_norm(x, (x.shape[-1],), g, b, LN_EPS)

            relu = staticmethod(torch.relu)
            sigmoid = staticmethod(torch.sigmoid)

            @staticmethod
            def softmax(x):
                return torch.softmax(x, dim=-1)

            @staticmethod
            def cat(xs):
                return torch.cat(xs, dim=1)

            @staticmethod
            def bce(s, y):
                return F.binary_cross_entropy_with_logits(s, y)  # mean

        self.ops = Ops
        self.labels = torch.from_numpy(labels_np())
        self.items = torch.from_numpy(items)
        self.feats = [torch.from_numpy(f) for f in features]
        self.dense = {n: torch.from_numpy(v) for n, v in dense.items()}

    def versions(self):
        return {"torch": self.torch.__version__, "numpy": np.__version__}

    def round(self, positives, seed, user_np=None):
        torch = self.torch
        plan = Plan(positives, seed)
        user_np = make_user() if user_np is None else user_np
        touched = torch.from_numpy(plan.touched)
        batches = torch.from_numpy(plan.batches)
        rows = self.items.index_select(0, touched).requires_grad_(True)
        d = {n: p.clone().requires_grad_(True) for n, p in self.dense.items()}
        u = {n: torch.from_numpy(v).requires_grad_(True) for n, v in user_np.items()}
        params = list(d.values()) + list(u.values()) + [rows]
        losses = []
        for e in range(EPOCHS):
            loss = forward_loss(self.ops, d, u, rows, self.feats, batches[e], self.labels, touched[batches[e]])
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, g in zip(params, grads):
                    p.add_(g, alpha=-LR)
            losses.append(loss.detach())
        with torch.no_grad():
            if not all(bool(torch.isfinite(p).all()) for p in params):
                raise FloatingPointError("diverged")
            row_delta = rows - self.items.index_select(0, touched)
            dense_delta = torch.cat([(d[n] - self.dense[n]).reshape(-1) for n in DENSE_NAMES])
        return {
            "plan": plan,
            "losses": torch.stack(losses).numpy(),
            "row_ids": plan.touched,
            "row_delta": row_delta.numpy(),
            "dense_delta": dense_delta.numpy(),
            "user": {n: p.detach() for n, p in u.items()},
        }

    def matmul(self, a, b):
        torch = self.torch
        a, b = torch.from_numpy(a), torch.from_numpy(b)
        return lambda: torch.mm(a, b)


PEERS = {"jax": JaxPeer, "torch": TorchPeer}


def load_peer(name, features, items, dense):
    try:
        return PEERS[name](features, items, dense)
    except ImportError as e:
        print(f"skipping {name}: cannot import it ({e})", file=sys.stderr)
        return None


# ---------------------------------------------------------------- measuring


def measure(name, repeats, as_json):
    features, positives, a, b = make_data()
    items, dense = make_global()
    peer = load_peer(name, features, items, dense)
    if peer is None:
        return 3
    mm = peer.matmul(a, b)
    mm()
    mm_times = []
    for _ in range(200):
        t = time.perf_counter()
        mm()
        mm_times.append(time.perf_counter() - t)
    matmul = median(mm_times)

    seed = 1  # Rng::new(round): a new negatives stream each round
    t = time.perf_counter()
    peer.round(positives, seed)  # warm-up (and JAX's compilation)
    warmup = time.perf_counter() - t
    wall, cpu, touched = [], [], []
    for _ in range(repeats):
        seed += 1
        t, c = time.perf_counter(), time.process_time()
        out = peer.round(positives, seed)
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - t)
        touched.append(len(out["row_ids"]))
    round_wall, round_cpu = median(wall), median(cpu)
    result = {
        "name": name,
        "round_ms_wall": round_wall * 1e3,
        "round_ms_cpu": round_cpu * 1e3,
        "matmul_ms": matmul * 1e3,
        "ratio_round_over_matmul": round_wall / matmul,
        "versions": {"python": platform.python_version(), **peer.versions()},
        "repeats": repeats,
        "first_round_ms": warmup * 1e3,
        "touched_rows_median": int(median(touched)),
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }
    if as_json:
        print(json.dumps(result), flush=True)
    else:
        vers = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
        print(
            f"{name} ({'jit' if name == 'jax' else 'eager'}; {vers}): local round, {POSITIVES} positives + "
            f"{PER_EPOCH} negatives, {ITEMS} items, {MODALITIES} x {FEATURE_DIM}-d features, d = {DIM}, "
            f"{EPOCHS} epochs, median of {repeats}, cpus {result['affinity']}"
        )
        print(f"  FedAvg + MFFM round  : {round_wall * 1e3:8.2f} ms wall, {round_cpu * 1e3:8.2f} ms cpu")
        print(f"  first round (warm-up): {warmup * 1e3:8.1f} ms")
        print(f"  400x512·512x64 matmul: {matmul * 1e3:8.3f} ms")
        print(f"  ratio MFFM / one projection: {round_wall / matmul:6.1f}x", flush=True)
    return 0


def check():
    """JAX and PyTorch on the same inputs must agree within f32 tolerance."""
    features, positives, _, _ = make_data()
    items, dense = make_global()
    peers = [load_peer(n, features, items, dense) for n in ("jax", "torch")]
    if any(p is None for p in peers):
        print("check needs both jax and torch", file=sys.stderr)
        return 2
    ok = True
    for seed in (1, 2):
        user = make_user()
        jx, th = (p.round(positives, seed, user) for p in peers)
        plan = jx["plan"]
        assert not np.isin(plan.negatives, positives).any(), "a negative is a positive"
        assert np.array_equal(jx["row_ids"], th["row_ids"])
        loss_err = np.max(np.abs(jx["losses"] - th["losses"]))

        def rel(a, b):
            return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))

        rows_err = rel(jx["row_delta"], th["row_delta"])
        dense_err = rel(jx["dense_delta"], th["dense_delta"])
        user_err = max(rel(np.asarray(jx["user"][n]), th["user"][n].numpy()) for n in USER_NAMES)
        good = loss_err < 1e-5 and rows_err < 1e-3 and dense_err < 1e-3 and user_err < 1e-3
        ok &= good
        print(f"plan seed {seed}: {len(plan.touched)} touched rows, {plan.negatives.size} negatives")
        print("  jax   losses:", " ".join(f"{v:.7f}" for v in jx["losses"]))
        print("  torch losses:", " ".join(f"{v:.7f}" for v in th["losses"]))
        print(
            f"  max |loss diff| {loss_err:.2e}; max rel diff of row delta {rows_err:.2e}, "
            f"dense delta {dense_err:.2e} ({jx['dense_delta'].size} values), user {user_err:.2e}"
        )
        print(
            f"  |row delta| {np.linalg.norm(th['row_delta']):.4e}, |dense delta| "
            f"{np.linalg.norm(th['dense_delta']):.4e}: {'OK' if good else 'MISMATCH'}"
        )
    print("check:", "passed" if ok else "FAILED")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peers", default="jax,torch", help="comma list of jax, torch")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--json", action="store_true", help="one JSON object per peer")
    ap.add_argument("--check", action="store_true", help="jax and torch agree on the same inputs")
    ap.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.check:
        return check()
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        ap.error(f"unknown peer(s) {unknown}; known: {sorted(PEERS)}")
    if args.in_process:
        return max(measure(p, args.repeats, args.json) for p in peers)
    status = 0
    for p in peers:  # one child per peer: the other framework stays unloaded
        cmd = [sys.executable, os.path.abspath(__file__), "--in-process", "--peers", p, "--repeats", str(args.repeats)]
        rc = subprocess.run(cmd + (["--json"] if args.json else [])).returncode
        if rc not in (0, 3):  # 3: skipped, already reported
            status = rc
    return status


if __name__ == "__main__":
    sys.exit(main())
