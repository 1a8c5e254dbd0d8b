"""One run and how runs are scheduled: the job, the runner (data -> model -> measurements -> store), the
executors and worker processes, time forecasts, provenance, trackers, model cards and prediction.

See docs/ARCHITECTURE.md for the layers and what each may import.
"""
