"""The captioner: neuraltalk2's LSTM language model, its training loop and beam search."""
