"""Figures drawn on images, with no model code: labelled boxes and a coloured caption strip (``boxes``), and
"where each generated word looked" (``attention``)."""
