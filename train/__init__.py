"""The training side: `python -m train KIND --dataset D ...` writes run folders and publishes checkpoints."""
