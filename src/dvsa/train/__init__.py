"""What the trainers share: typed resumable state (state.py), Ctrl-C between steps (interrupt.py), lr decay (schedule.py)."""
