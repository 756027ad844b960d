"""Training data: the corpus read once into a token-id cache and its per-epoch batch schedule
(:mod:`~smoothcse.data.corpus`), this process's batches collated ahead (:mod:`~smoothcse.data.loader`),
and how the two dropout views of a batch reach the encoder (:mod:`~smoothcse.data.views`)."""
