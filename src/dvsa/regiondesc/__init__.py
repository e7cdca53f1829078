"""Region-level descriptions (§3.2 end, §4.3, Table 3, Figure 6): the alignment model's MRF snippets become a
(region, phrase) dataset, the captioner trained on it describes single regions, scored against region
references beside the full-frame captioner, a nearest-neighbour baseline and human agreement."""
