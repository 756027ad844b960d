"""``smoothcse bench``: training throughput of smoothcse against sentence-transformers' Trainer
(:func:`smoothcse.bench.benchmark.run_benchmark`)."""
