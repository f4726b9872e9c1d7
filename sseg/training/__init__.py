"""Training: the shared loop (``loop``: seeds, schedules, train state, ``Trainer``,
distributed set-up), pre-training (config, data, anchor sampling, logs), the
synthetic corpus, and fine-tuning.

Nothing is imported here.
"""
