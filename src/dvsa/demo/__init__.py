"""`dvsa demo`: a local web page (Gradio) over the trained models of the checkout: Caption (the captioner's
beam search with its attention drawn), Describe (the region captioner, §4.3) and Search (the alignment model
as a search engine, eq. (8), with the MRF snippets of eqs. (10)-(12)). ``index`` embeds a split once (cached
on disk), ``models`` loads what the page reads, ``handlers`` turn one request into its result with no shared
mutable state, ``app`` lays out the page, ``command`` is the CLI."""
