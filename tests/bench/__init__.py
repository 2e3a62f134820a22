"""The benchmark behind ``scripts/bench`` (BENCHMARKS.md): notifyagent and the real pgAgent
side by side, measured from outside the agents, on the test suite's throwaway cluster.

One module per scenario (:mod:`spaced`, :mod:`run_now`, :mod:`herd`, :mod:`idle`,
:mod:`scale`); :mod:`cli` is the command line.
"""
