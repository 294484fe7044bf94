#!/usr/bin/env python3
"""Reference (epsilon, delta) values for fedmr-core's RDP accountant, made by
Google's dp-accounting (PyPI `dp-accounting`; a test fixture, never a runtime
dependency): the Gaussian mechanism composed over rounds, no sampling.

    python3 -m venv /tmp/dpv && /tmp/dpv/bin/pip install dp-accounting
    /tmp/dpv/bin/python scripts/dp-fixtures.py > sdk-core/core/tests/fixtures/dp_accounting.json
"""
import json

import dp_accounting
from dp_accounting.rdp import rdp_privacy_accountant as rdp

cases = []
for noise in [0.3, 0.5, 1.0, 2.0, 5.0, 25.0]:
    for rounds in [1, 5, 20, 100]:
        for delta in [1e-5, 1 / 204, 1 / 943]:
            accountant = rdp.RdpAccountant()
            accountant.compose(dp_accounting.GaussianDpEvent(noise), rounds)
            epsilon = accountant.get_epsilon(delta)
            cases.append({"noise_to_sensitivity": noise, "rounds": rounds,
                          "delta": delta, "epsilon": epsilon})
from importlib.metadata import version

print(json.dumps({"made_by": f"dp-accounting {version('dp-accounting')}",
                  "cases": cases}, indent=1))
