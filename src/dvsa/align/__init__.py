"""The alignment model: BRNN over words, region embeddings, eq. (8) scores, eq. (9) loss, MRF snippets."""
