"""Human feedback: the labelling web app (``rlhf-ray label serve``), the judgements file it appends to, and
the figures of that file (``rlhf-ray label stats``)."""
