"""Learning: P layouts (packed.py), initial P (initial_p.py), RLS drivers and metrics."""
