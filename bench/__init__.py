"""The genmodels benchmark: training throughput, time to quality, sampling latency and the app (python -m bench)."""
