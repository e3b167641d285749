"""Training tasks, one module per model family; `genmodels.kinds` names each kind's task as "module:Class".

A task owns its networks, optimisers, training step, epoch-end checks and resumable state; `train.run` drives
any of them through the `BaseTask` interface and knows nothing of particular kinds.
"""
