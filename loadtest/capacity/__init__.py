"""A model of the platform: a discrete-event simulation (SimPy) of Cloud Run serving the function
with concurrency 1, fed with the service and cold-start times measured here (``loadtest.bench``).

inputs    what the model samples: bench.json (and the async jobs' per-part times, when present)
platform  the simulation: instances, the pending-request queue, Pub/Sub redelivery
scenario  one simulated run (a service, a load, a deadline) and its figures
prices    Cloud Run's published prices, and the cost of a simulated run
sizing    the sweep over max_instances per engine and load, its chart and the recommendation
validate  the model against the local fleet (loadtest.run) at N = 1, 2, 4
"""
